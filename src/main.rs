// glibc's malloc spent a quarter of the server's CPU under load (frames
// allocated on one thread are freed on another); see docs/decisions.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc commits its arenas up front by default and then keeps the pages a
// burst of work touched (a reconnect storm's handshakes); committing on demand
// lets them go back to the OS, a third of the RSS of 4,000 idle chargers
// (decision 70). It must be set before the first arena is reserved, that is
// before the first allocation: hence a constructor, which runs after
// mimalloc's own (priority 101) and before Rust's runtime allocates anything.
#[used]
#[unsafe(link_section = ".init_array")]
static LAZY_ARENA_COMMIT: extern "C" fn() = lazy_arena_commit;

extern "C" fn lazy_arena_commit() {
    // `mi_option_arena_eager_commit` in mimalloc.h's `mi_option_e` (v2 and v3 alike).
    const ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
    unsafe extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    // SAFETY: sets one integer in mimalloc's option table; no allocation.
    unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) }
}

fn main() -> std::process::ExitCode {
    voltyard::cli::main()
}
