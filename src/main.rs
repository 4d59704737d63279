// glibc's malloc spent a quarter of the server's CPU under load (frames
// allocated on one thread are freed on another); see docs/decisions.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's option ids (`mi_option_e` in the `mimalloc.h` that
/// libmimalloc-sys 0.1.49 vendors; the dependency is pinned to it).
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;
const MI_OPTION_PURGE_DELAY: i32 = 15;

fn main() -> std::process::ExitCode {
    // An idle connection should cost its live bytes, not the pages mimalloc
    // keeps committed for reuse: return freed pages at once, commit arenas
    // lazily (the RSS goal is per idle charger).
    // SAFETY: plain option setters; no allocation is in flight.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
    voltyard::cli::main()
}
