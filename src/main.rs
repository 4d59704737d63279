// glibc's malloc spent a quarter of the server's CPU under load (frames
// allocated on one thread are freed on another); see docs/decisions.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    voltyard::cli::main()
}
