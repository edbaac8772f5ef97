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

/// A vector of `n` copies of `fill`, asking the kernel for huge pages first
/// (before the pages are touched): a large index looked up at random
/// otherwise misses the TLB on nearly every access. Only a hint; where
/// transparent huge pages are off it changes nothing.
pub fn huge_vec<T: Copy>(n: usize, fill: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    #[cfg(target_os = "linux")]
    if bytes >= 4 << 20 {
        const PAGE: usize = 4096;
        let start = v.as_mut_ptr() as usize;
        let (lo, hi) = (start.div_ceil(PAGE) * PAGE, (start + bytes) / PAGE * PAGE);
        if hi > lo {
            // SAFETY: [lo, hi) is page-aligned and lies inside the buffer
            // `v` owns (rounded inward), so no other object is affected;
            // MADV_HUGEPAGE is advice about backing pages only and never
            // changes the contents or validity of the memory. A failure
            // (e.g. THP disabled) is harmless and ignored.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    v.resize(n, fill);
    v
}
