//! Probes compiled into the binary, so `healthprobe run http …` needs no file, and
//! precompiled when the binary was built (`build.rs`), so it needs no compiler either.

use std::borrow::Cow;
use std::sync::OnceLock;

/// One bundled probe.
#[derive(Debug)]
pub struct Bundled {
    /// The name used on the command line.
    pub name: &'static str,
    /// The component precompiled for this binary's engine and target (a `.cwasm`).
    pub precompiled: Stored,
    /// SHA-256 (hex) of the component as built, before precompiling.
    pub sha256: &'static str,
    /// Size in bytes of the component as built.
    pub wasm_size: usize,
    /// Where [`Bundled::in_place`] decompressed the code (address, length), once it did.
    #[cfg_attr(
        not(all(target_os = "linux", target_arch = "x86_64")),
        expect(dead_code, reason = "code runs in place on x86_64 only")
    )]
    pub(crate) loaded: OnceLock<Result<(usize, usize), String>>,
}

/// How a bundled probe's precompiled code is kept in the binary.
#[derive(Debug)]
pub enum Stored {
    /// As is, page-aligned: it runs where it lies.
    Raw(&'static [u8]),
    /// LZ4-compressed with its size prepended.
    Lz4(&'static [u8]),
}

/// Page alignment for [`Stored::Raw`] code: wasmtime makes the text section of an image
/// executable in place, and page protections apply to whole pages.
#[repr(C, align(4096))]
pub struct PageAligned<T: ?Sized>(pub T);

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The bundled probe called `name`.
pub fn find(name: &str) -> Option<&'static Bundled> {
    BUNDLED.iter().find(|b| b.name == name)
}

/// The names of the bundled probes.
pub fn names() -> Vec<&'static str> {
    BUNDLED.iter().map(|b| b.name).collect()
}

impl Bundled {
    /// The precompiled code: borrowed from the binary when stored as is, else decompressed.
    pub fn precompiled(&self) -> Result<Cow<'static, [u8]>, String> {
        match self.precompiled {
            Stored::Raw(code) => Ok(Cow::Borrowed(code)),
            Stored::Lz4(lz4) => lz4_flex::decompress_size_prepended(lz4)
                .map(Cow::Owned)
                .map_err(|e| e.to_string()),
        }
    }

    /// The precompiled code in page-aligned memory that is never freed or written again,
    /// for [`wasmtime::component::Component::deserialize_raw`] with [`InPlace`]: the engine
    /// then runs the code where it lies instead of copying it, which saves a whole health
    /// check a tenth of its page faults. [`Stored::Raw`] code lies in the binary;
    /// [`Stored::Lz4`] code is decompressed once per process into a mapping of its own.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    pub(crate) fn in_place(&self) -> Result<std::ptr::NonNull<[u8]>, String> {
        let lz4 = match self.precompiled {
            // Read-only data of the binary: wasmtime only reads it, and `InPlace` turns
            // the pages of its text section from read-only to read-and-execute.
            Stored::Raw(code) => return Ok(std::ptr::NonNull::from(code)),
            Stored::Lz4(lz4) => lz4,
        };
        let &(addr, len) = self
            .loaded
            .get_or_init(|| {
                use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous};
                let (len, compressed) =
                    lz4_flex::block::uncompressed_size(lz4).map_err(|e| e.to_string())?;
                // SAFETY: a fresh private anonymous mapping, aliased by nothing. POPULATE
                // maps all its pages in one go rather than one page fault at a time.
                #[allow(unsafe_code)]
                let ptr = unsafe {
                    mmap_anonymous(
                        std::ptr::null_mut(),
                        len.max(1),
                        ProtFlags::READ | ProtFlags::WRITE,
                        MapFlags::PRIVATE | MapFlags::POPULATE,
                    )
                }
                .map_err(|e| format!("cannot map memory for its code: {e}"))?;
                // SAFETY: the mapping is `len` bytes, readable and writable, and only this
                // slice refers to it until it is handed to wasmtime below.
                #[allow(unsafe_code)]
                let out = unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) };
                let written =
                    lz4_flex::block::decompress_into(compressed, out).map_err(|e| e.to_string())?;
                if written != len {
                    return Err(format!("decompressed {written} bytes, expected {len}"));
                }
                Ok((ptr as usize, len))
            })
            .as_ref()
            .map_err(Clone::clone)?;
        let slice = std::ptr::slice_from_raw_parts_mut(addr as *mut u8, len);
        std::ptr::NonNull::new(slice).ok_or_else(|| "no code".to_string())
    }
}

/// Makes precompiled code executable where it lies, for [`Bundled::in_place`]: wasmtime
/// hands the text section of each loaded image to this instead of its own `mprotect`.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[derive(Debug)]
pub(crate) struct InPlace;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
impl wasmtime::CustomCodeMemory for InPlace {
    fn required_alignment(&self) -> usize {
        rustix::param::page_size()
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        use rustix::mm::{MprotectFlags, mprotect};
        // SAFETY: wasmtime passes the page-aligned text section of an image it owns or
        // was given, which nothing writes to any more. x86_64 needs no instruction-cache
        // maintenance after writing code (hence this module is x86_64-only).
        #[allow(unsafe_code)]
        unsafe {
            mprotect(
                ptr.cast_mut().cast(),
                len,
                MprotectFlags::READ | MprotectFlags::EXEC,
            )
        }
        .map_err(|e| wasmtime::format_err!("cannot make code executable: {e}"))
    }

    /// Leaves the code executable. wasmtime calls this when a loaded image is dropped:
    /// memory it mapped itself is unmapped right after anyway, and a bundled probe's
    /// memory stays for the process, where another runner may still be running it.
    fn unpublish_executable(&self, _ptr: *const u8, _len: usize) -> wasmtime::Result<()> {
        Ok(())
    }
}
