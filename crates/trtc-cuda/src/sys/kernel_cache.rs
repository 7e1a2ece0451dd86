//! trtc's NVRTC kernels compiled straight to the device's machine code (CUBIN) and kept
//! on disk, so that a process loads them instead of compiling them.
//!
//! PTX handed to the driver is compiled again (JIT) on load; the driver caches that, but
//! NVRTC's own front end still ran in every process, and on a machine whose driver cache
//! is empty the JIT compiled every module one after another (about 30 s for trtc's float
//! and fp16 modules on the H200 machine). Here each module is compiled to CUBIN by NVRTC
//! (callers compile several on threads of their own) and stored under
//! `$TRTC_KERNEL_CACHE`, else `$XDG_CACHE_HOME/trtc/kernels`, else `$HOME/.cache/trtc/kernels`
//! (`TRTC_KERNEL_CACHE=off` keeps nothing). A file is named by a hash of the source, the
//! architecture, the NVRTC version and trtc's version, and holds a checksum of its bytes:
//! a file that fails the checksum, or that the driver will not load, is compiled again and
//! replaced. A cache that cannot be written costs the time only.

use std::path::{Path, PathBuf};

/// The machine code of `source` for `arch` (`sm_90`), from the cache or compiled by
/// NVRTC (and stored); `what` names the module in errors.
pub(crate) fn cubin(source: &str, arch: &str, what: &str) -> Result<Vec<u8>, String> {
    let dir = cache_dir();
    let key = key(source, arch);
    if let Some(bytes) = dir.as_deref().and_then(|d| read(d, key)) {
        return Ok(bytes);
    }
    let bytes = compile(source, arch).map_err(|e| format!("NVRTC ({what}): {e}"))?;
    if let Some(d) = dir {
        if let Err(e) = write(&d, key, &bytes) {
            tracing::debug!("kernel cache {}: not written ({e})", d.display());
        }
    }
    Ok(bytes)
}

/// Forgets the cached `source` for `arch` (the driver refused the file).
pub(crate) fn forget(source: &str, arch: &str) {
    if let Some(d) = cache_dir() {
        let _ = std::fs::remove_file(file(&d, key(source, arch)));
    }
}

fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("TRTC_KERNEL_CACHE") {
        Some(v) if v == "off" || v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|c| c.join("trtc").join("kernels")),
    }
}

fn key(source: &str, arch: &str) -> u64 {
    let (major, minor) = nvrtc_version();
    let mut h = Fnv::default();
    for part in [source, arch, env!("CARGO_PKG_VERSION")] {
        h.write(part.as_bytes());
        h.write(&[0]);
    }
    h.write(&major.to_le_bytes());
    h.write(&minor.to_le_bytes());
    h.0
}

fn file(dir: &Path, key: u64) -> PathBuf {
    dir.join(format!("{key:016x}.cubin"))
}

/// The cached bytes of `key`, if the file is there and whole.
fn read(dir: &Path, key: u64) -> Option<Vec<u8>> {
    let data = std::fs::read(file(dir, key)).ok()?;
    let (sum, bytes) = data.split_at_checked(8)?;
    let mut h = Fnv::default();
    h.write(bytes);
    (sum == h.0.to_le_bytes() && !bytes.is_empty()).then(|| bytes.to_vec())
}

/// Stores `bytes` as `key`: a checksum, then the bytes, written to a file of this
/// process's and renamed into place, so that a reader never sees half a file.
fn write(dir: &Path, key: u64, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut h = Fnv::default();
    h.write(bytes);
    let mut data = h.0.to_le_bytes().to_vec();
    data.extend_from_slice(bytes);
    let tmp = dir.join(format!("{key:016x}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, file(dir, key))
}

fn nvrtc_version() -> (i32, i32) {
    let (mut major, mut minor) = (0, 0);
    // Safety: writes two ints; NVRTC is present (the device was probed before).
    unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    (major, minor)
}

/// NVRTC's CUBIN of `source` for the real architecture `arch`.
fn compile(source: &str, arch: &str) -> Result<Vec<u8>, String> {
    use cudarc::nvrtc::{result, sys};
    let src = std::ffi::CString::new(source).map_err(|e| e.to_string())?;
    let prog = result::create_program(&src, None).map_err(|e| e.to_string())?;
    let options = [format!("--gpu-architecture={arch}")];
    // Safety: `prog` was created above and is destroyed once, below.
    let out = unsafe {
        match result::compile_program(prog, &options) {
            Err(e) => {
                let log = result::get_program_log(prog)
                    .map(|l| {
                        std::ffi::CStr::from_ptr(l.as_ptr())
                            .to_string_lossy()
                            .into_owned()
                    })
                    .unwrap_or_default();
                Err(format!("{e}\n{log}"))
            }
            Ok(()) => {
                let mut size = 0usize;
                let mut bytes = Vec::new();
                sys::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .and_then(|()| {
                        bytes.resize(size, 0u8);
                        sys::nvrtcGetCUBIN(prog, bytes.as_mut_ptr().cast()).result()
                    })
                    .map(|()| bytes)
                    .map_err(|e| format!("reading the CUBIN: {e}"))
            }
        }
    };
    // Safety: as above.
    let _ = unsafe { result::destroy_program(prog) };
    out
}

/// FNV-1a, 64 bits: the same on every machine and Rust version (file names must be).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("trtc-kc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_stored_module_reads_back_as_written() {
        let d = scratch("roundtrip");
        write(&d, 7, b"\x7fELF machine code").unwrap();
        assert_eq!(read(&d, 7).as_deref(), Some(&b"\x7fELF machine code"[..]));
        assert_eq!(read(&d, 8), None, "another key");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_damaged_or_cut_file_is_not_used() {
        let d = scratch("damaged");
        write(&d, 9, b"\x7fELF machine code").unwrap();
        let mut data = std::fs::read(file(&d, 9)).unwrap();
        data[12] ^= 1;
        std::fs::write(file(&d, 9), &data).unwrap();
        assert_eq!(read(&d, 9), None, "one bit flipped");
        write(&d, 9, b"\x7fELF machine code").unwrap();
        let data = std::fs::read(file(&d, 9)).unwrap();
        std::fs::write(file(&d, 9), &data[..data.len() - 3]).unwrap();
        assert_eq!(read(&d, 9), None, "cut short");
        std::fs::write(file(&d, 9), &data[..5]).unwrap();
        assert_eq!(read(&d, 9), None, "shorter than the checksum");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_hash_is_fnv_1a() {
        // Published FNV-1a 64 test vectors.
        let mut h = Fnv::default();
        h.write(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv::default();
        h.write(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
    }
}
