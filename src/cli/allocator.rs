//! The process's allocator (mimalloc, the default feature `mimalloc`) and
//! how it is tuned.

/// Threads free what other threads allocated all the time here (batches,
/// envelopes, librdkafka's buffers); mimalloc handles that without glibc's
/// per-arena lock contention.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc commits its arena eagerly on Linux by default: every page it
/// ever handed out stays resident. Without that, peak RSS fell from 67–85
/// to about 17 MiB on a file → null job and from 187–193 to 101–104 MiB in
/// `mns_pipeline`, at the same speed (BENCHMARKS.md, session 11). The
/// option must be set before the first allocation, which happens before
/// `main`, so it is set from the ELF initialisers.
/// `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins. (A short
/// purge delay saved a little more memory and cost 6 % of `mns_pipeline`'s
/// throughput; see [`release_freed_memory`] instead.)
#[cfg(all(target_os = "linux", feature = "mimalloc"))]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

/// `mi_option_arena_eager_commit` in mimalloc v3's `mimalloc.h` (the sys
/// crate's constants predate it).
#[cfg(all(target_os = "linux", feature = "mimalloc"))]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

#[cfg(all(target_os = "linux", feature = "mimalloc"))]
extern "C" fn tune_allocator() {
    // SAFETY: `getenv` reads the environment, which nothing writes this
    // early (initialisers run on the one thread before `main`); the name
    // is a NUL-terminated literal. `mi_option_set` stores one integer in
    // mimalloc's option table and is valid at any time.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

/// Returns to the OS what loading the config freed (called by `cli::reported`,
/// which every command's config load goes through). mimalloc returns freed
/// pages only when the freeing thread allocates again, and the main thread
/// then waits for the daemon (or backfill) to stop: a 10k-rule config left
/// about 47 MiB resident for the process's life.
pub(super) fn release_freed_memory() {
    // SAFETY: `mi_collect` frees this thread's empty pages and purges what
    // the arenas hold freed; it touches no live allocation.
    #[cfg(feature = "mimalloc")]
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}
