fn main() -> std::process::ExitCode {
    voltyard::cli::main()
}
