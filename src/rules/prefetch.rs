//! Software prefetch: a hint that starts loading a cache line while the CPU
//! does other work. Batched lookups use it to overlap their memory misses.

/// Starts loading the cache line holding `r`. A no-op off x86_64.
#[inline(always)]
pub fn line<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: prefetch is a hint that never faults and reads no data;
        // the pointer comes from a live reference anyway, and SSE (which
        // provides the instruction) is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
