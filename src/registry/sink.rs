//! Where downloaded blob bytes go. The client streams into a sink and checks the sink's digest
//! when the download ends; a sink that already holds a prefix lets the client resume with Range.

use oci_spec::image::Digest;
use sha2::Digest as _;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A destination for one blob's bytes, hashing what it is given.
pub trait BlobSink: Send {
    /// How many bytes the sink holds already; a download resumes from there.
    fn written(&self) -> u64;
    /// Appends the next bytes of the blob.
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Drops everything written (the server ignored a Range request and sent the whole blob).
    fn restart(&mut self) -> io::Result<()>;
    /// sha256 of everything written so far.
    fn digest(&self) -> Digest;
}

/// A sink writing to a file, resuming a partial file left by an earlier run.
pub struct FileSink {
    path: PathBuf,
    file: File,
    hasher: sha2::Sha256,
    written: u64,
}

impl FileSink {
    /// Opens `path`, keeping and re-hashing any bytes already in it.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        let mut hasher = sha2::Sha256::new();
        let written = io::copy(
            &mut (&mut file).take(u64::MAX),
            &mut HashWriter(&mut hasher),
        )?;
        file.seek(SeekFrom::End(0))?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
            hasher,
            written,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the file to disk and hands it back.
    pub fn finish(self) -> io::Result<File> {
        self.file.sync_all()?;
        Ok(self.file)
    }
}

struct HashWriter<'a>(&'a mut sha2::Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobSink for FileSink {
    fn written(&self) -> u64 {
        self.written
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk)?;
        self.hasher.update(chunk);
        self.written += chunk.len() as u64;
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.hasher = sha2::Sha256::new();
        self.written = 0;
        Ok(())
    }

    fn digest(&self) -> Digest {
        crate::image::digest_from_hash(&self.hasher.clone().finalize())
    }
}

/// An in-memory sink, for manifests and configs.
impl BlobSink for Vec<u8> {
    fn written(&self) -> u64 {
        self.len() as u64
    }
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
    fn restart(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
    fn digest(&self) -> Digest {
        crate::image::sha256_digest(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sink_resumes_and_hashes_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"hello ").unwrap();
        let mut sink = FileSink::open(&path).unwrap();
        assert_eq!(sink.written(), 6);
        sink.write(b"world").unwrap();
        assert_eq!(sink.digest(), crate::image::sha256_digest(b"hello world"));
        sink.restart().unwrap();
        sink.write(b"x").unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }
}
