//! The container bundle `setup` writes next to the manifest: the setup script
//! and, when available, a static `caw` the container can run.

use std::path::{Path, PathBuf};

use crate::agents::ShellRules;
use crate::manifest::Manifest;

/// File name of the container setup script inside the auth dir.
pub const SETUP_SCRIPT: &str = "setup-container.sh";
/// Path of the bundled binary inside the auth dir.
pub const BUNDLED_BINARY: &str = "bin/caw";
/// Environment variable naming a static `caw` to bundle instead of the running one.
pub const STATIC_BINARY_ENV: &str = "CAW_STATIC_BINARY";

const TEMPLATE: &str = include_str!("bundle/setup-container.sh");
const FILES_MARKER: &str = "@CAW_FILES@";
const RULES_MARKER: &str = "@CAW_RULES@";
const MODE_MARKER: &str = "@CAW_MODE@";

/// The setup script for `manifest`, with its file list baked in so the shell
/// side needs no JSON parser.
///
/// Each line of the list is `agent TAB src TAB container_target TAB strategy
/// TAB mode`; manifest paths were validated (relative, normalised), and any
/// that holds a tab or newline is left out of the script rather than
/// corrupting it.
pub fn setup_script(manifest: &Manifest) -> String {
    let mut files = String::new();
    for (agent, f) in manifest.files() {
        let fields = [
            agent,
            &f.src,
            &f.container_target,
            &f.strategy.to_string(),
            f.mode.as_str(),
        ];
        if fields.iter().any(|s| s.contains(['\t', '\n', '\r'])) {
            log::warn!("`{}` cannot be listed in {SETUP_SCRIPT}; skipped", f.src);
            continue;
        }
        files.push_str(&fields.join("\t"));
        files.push('\n');
    }
    TEMPLATE
        .replacen(MODE_MARKER, manifest.mode.as_str(), 1)
        .replacen(FILES_MARKER, files.trim_end_matches('\n'), 1)
        .replacen(RULES_MARKER, &shell_rules(), 1)
}

/// One line per known agent: what the shell guard may check, or why it
/// does not sync that agent (from the registry, so a new agent needs no
/// edit of the script).
fn shell_rules() -> String {
    let mut lines = Vec::new();
    for agent in crate::agents::REGISTRY {
        let fields = match agent.shell {
            ShellRules::Sync {
                object,
                expiry,
                tokens,
            } => {
                // Empty fields would vanish in the shell's `read`: `.` is the top level.
                let object = if object.is_empty() { "." } else { object };
                let max = agent.max_lifetime.as_secs().to_string();
                [agent.name, object, expiry, &tokens.join(","), &max].join("\t")
            }
            ShellRules::NoSync(why) => [agent.name, "-", "-", why].join("\t"),
        };
        lines.push(fields);
    }
    lines.join("\n")
}

/// Where the static `caw` that `setup` writes as `bin/caw` comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Binary<'a> {
    /// A file (`CAW_STATIC_BINARY`, or the running executable).
    Path(PathBuf),
    /// Bytes embedded in the running program (the `caw-bundle` crate).
    Bytes(&'a [u8]),
}

// By hand: the bytes are megabytes of machine code.
impl std::fmt::Debug for Binary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Binary::Path(p) => f.debug_tuple("Path").field(p).finish(),
            Binary::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
        }
    }
}

impl Binary<'_> {
    /// Its contents.
    pub fn read(&self) -> std::io::Result<std::borrow::Cow<'_, [u8]>> {
        match self {
            Binary::Path(p) => Ok(fs_err::read(p)?.into()),
            Binary::Bytes(b) => Ok((*b).into()),
        }
    }
}

/// True when `path` is an x86-64 or aarch64 Linux ELF executable with no
/// program interpreter, i.e. a static build that runs in a `FROM scratch` image.
pub fn is_static_linux_executable(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    elf_is_static(&bytes)
}

/// [`is_static_linux_executable`] for an executable's bytes.
pub fn is_static_linux_bytes(bytes: &[u8]) -> bool {
    elf_is_static(bytes)
}

fn elf_is_static(b: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    const PT_DYNAMIC: u32 = 2;
    // 64-bit, little-endian ELF only: the machines caw's containers run on.
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let e_type = u16_at(16);
    let machine = u16_at(18);
    // ET_EXEC, or ET_DYN for static-pie; x86-64 (62) or aarch64 (183).
    if !(e_type == 2 || e_type == 3) || !(machine == 62 || machine == 183) {
        return false;
    }
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    if phentsize < 4 || phoff.saturating_add(phentsize * phnum) > b.len() {
        return false;
    }
    let mut dynamic = false;
    for i in 0..phnum {
        match u32_at(phoff + i * phentsize) {
            PT_INTERP => return false,
            PT_DYNAMIC => dynamic = true,
            _ => {}
        }
    }
    // A static-pie has PT_DYNAMIC but no interpreter; a plain ET_DYN library
    // without an interpreter is not something we can exec, but it would not
    // be the running binary either.
    e_type == 2 || dynamic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_and_truncated_files_are_not_static() {
        assert!(!elf_is_static(b"#!/bin/sh\n"));
        assert!(!elf_is_static(b"\x7fELF\x02\x01"));
    }

    #[test]
    fn this_dynamically_linked_test_binary_is_not_static() {
        // Test binaries are built without crt-static, so they have an interpreter.
        let exe = std::env::current_exe().unwrap();
        assert!(!is_static_linux_executable(&exe));
    }

    /// Under CI a test whose real part is missing fails; elsewhere it says it skipped.
    fn skip(why: &str) {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "`CI` is set, so this test may not be skipped: {why}"
        );
        eprintln!("skipped: {why}");
    }

    #[test]
    fn a_crt_static_build_is_static() {
        // scripts/test.sh and scripts/e2e-test.sh build one and name it here.
        match std::env::var_os("CAW_E2E_STATIC_BIN") {
            Some(bin) if !bin.is_empty() => {
                assert!(is_static_linux_executable(Path::new(&bin)), "{bin:?}")
            }
            _ => skip("CAW_E2E_STATIC_BIN is not set (scripts/build-static.sh prints one)"),
        }
    }

    #[test]
    fn busybox_static_agrees_with_file() {
        let bb = Path::new("/bin/busybox");
        if !bb.exists() {
            return skip("no /bin/busybox (Debian's busybox-static; scripts/e2e-prereqs.sh)");
        }
        let out = match std::process::Command::new("file")
            .arg("-L")
            .arg(bb)
            .output()
        {
            Ok(out) if out.status.success() => out,
            _ => return skip("`file` cannot be run (Debian's `file` package)"),
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ELF"), "`file` does not see an ELF: {text}");
        assert_eq!(
            is_static_linux_executable(bb),
            text.contains("statically linked") || text.contains("static-pie linked"),
            "`file` says: {text}"
        );
    }
}
