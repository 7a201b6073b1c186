//! Whether a path is a mount point, from `/proc/self/mountinfo`.

use std::path::{Path, PathBuf};

/// Whether `path` is a mount point in this mount namespace; `None` when
/// `/proc/self/mountinfo` cannot be read, so nobody can tell.
pub fn is_mount_point(path: &Path) -> Option<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let Ok(real) = std::fs::canonicalize(path) else {
        return Some(false);
    };
    let found = mount_points(&info).any(|p| p == real);
    Some(found)
}

/// The mount points (field 5) listed in `/proc/self/mountinfo` text.
fn mount_points(info: &str) -> impl Iterator<Item = PathBuf> + '_ {
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
}

/// Undo the kernel's `\040`-style escapes of space, tab, newline and backslash.
fn unescape_octal(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_are_unescaped() {
        let info = "36 35 98:0 /mnt1 /tmp/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 98:0 / / rw - ext4 /dev/sda rw\n";
        let points: Vec<_> = mount_points(info).collect();
        assert_eq!(points, [PathBuf::from("/tmp/a b"), PathBuf::from("/")]);
        assert_eq!(unescape_octal("x\\134y\\011"), "x\\y\t");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn root_is_a_mount_point_and_a_temp_file_is_not() {
        // Every Linux this runs on has /proc; its absence is a broken test machine.
        assert!(
            Path::new("/proc/self/mountinfo").exists(),
            "no /proc/self/mountinfo"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"{}").unwrap();
        assert_eq!(is_mount_point(&file), Some(false));
        assert_eq!(is_mount_point(Path::new("/")), Some(true));
    }
}
