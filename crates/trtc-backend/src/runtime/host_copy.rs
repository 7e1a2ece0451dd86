//! Copying a batch from the caller's tensors into the stream's page-locked staging: tens of
//! megabytes per batch, which one thread copies slower than PCIe moves it and which,
//! copied the ordinary way, also reads every destination line into the cache before
//! writing it (the DMA then reads it a second time). On x86-64 the bulk of each thread's
//! part is written with non-temporal (streaming) 16-byte stores, which skip that read.

/// Copies of at most this many bytes run on the calling thread.
const SERIAL: usize = 8 << 20;

/// `dst.copy_from_slice(src)` for equal lengths, on several threads when it is large;
/// slices of different lengths copy their common prefix.
pub(crate) fn copy_parallel(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get().min(16));
    if n <= SERIAL || threads == 1 {
        copy_streaming(dst, src);
        return;
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        for (d, c) in dst.chunks_mut(per).zip(src.chunks(per)) {
            s.spawn(move || copy_streaming(d, c));
        }
    });
}

/// `dst.copy_from_slice(src)` (equal lengths), the 16-byte-aligned middle of `dst` written
/// with streaming stores where the target has them.
fn copy_streaming(dst: &mut [u8], src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        const LANE: usize = 16;
        // Bytes before the first 16-byte boundary of `dst`, then whole 16-byte blocks.
        let head = dst.as_ptr().align_offset(LANE).min(dst.len());
        let blocks = (dst.len() - head) / LANE;
        let body = head + blocks * LANE;
        dst[..head].copy_from_slice(&src[..head]);
        let (d, s) = (dst[head..body].as_mut_ptr(), src[head..body].as_ptr());
        for b in 0..blocks {
            // Safety: SSE2 is part of x86-64. Block `b` lies inside `dst[head..body]` and
            // `src[head..body]` (equal lengths); the destination is 16-byte aligned, the
            // source is read unaligned.
            unsafe {
                let v = _mm_loadu_si128(s.add(b * LANE) as *const __m128i);
                _mm_stream_si128(d.add(b * LANE) as *mut __m128i, v);
            }
        }
        // Safety: as above; orders the streaming stores before whatever follows (the
        // upload is queued after this thread has been joined).
        unsafe { _mm_sfence() };
        dst[body..].copy_from_slice(&src[body..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    use super::{copy_parallel, copy_streaming};

    #[test]
    fn parallel_copy_copies_every_byte() {
        for n in [0, 7, 8 << 20, (8 << 20) + 1, (20 << 20) + 3] {
            let src: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let mut dst = vec![0u8; n];
            copy_parallel(&mut dst, &src);
            assert!(dst == src, "{n} bytes");
        }
    }

    /// Every alignment of destination and source, lengths around whole blocks: the
    /// unaligned head, the streamed blocks and the tail all land, and nothing outside.
    #[test]
    fn streaming_copy_handles_every_alignment() {
        let src: Vec<u8> = (0..300).map(|i| (i * 7 % 253) as u8 + 1).collect();
        for d_off in 0..16 {
            for s_off in 0..16 {
                for n in [0, 1, 15, 16, 17, 31, 32, 33, 200] {
                    let mut dst = vec![0u8; 260];
                    copy_streaming(&mut dst[d_off..d_off + n], &src[s_off..s_off + n]);
                    assert_eq!(&dst[d_off..d_off + n], &src[s_off..s_off + n]);
                    assert!(dst[..d_off].iter().all(|&b| b == 0), "before the copy");
                    assert!(dst[d_off + n..].iter().all(|&b| b == 0), "after the copy");
                }
            }
        }
    }
}
