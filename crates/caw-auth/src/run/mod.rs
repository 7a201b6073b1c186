//! `caw run`: any image, unchanged, with the host's logins, on Docker or
//! Podman.
//!
//! [`prepare`] sets the auth dir up when it has no manifest, makes sure the
//! host sync runs, and gives the engine's command line
//!
//! ```text
//! <engine> run OPTIONS… MOUNTS… --user 0 --entrypoint M/bin/caw IMAGE \
//!     auth exec --user U --mount-point M -- COMMAND…
//! ```
//!
//! which the front end runs in place of itself, so the engine's output,
//! signals and exit status are the user's directly.
//!
//! The command is the engine's: the image's `ENTRYPOINT` (or `--entrypoint
//! E`, empty for none) followed by `CMD…`, or by the image's `CMD` when none
//! is given (with `--entrypoint`, the image's `CMD` is dropped, as docker
//! does). `U` is `--user`, else the image's `USER` (name or uid; a `:group`
//! part is ignored: `U`'s groups come from the image's `/etc/passwd` and
//! `/etc/group`); a root or empty `USER` is an error asking for `--user`.

pub mod argv;
pub mod image;

use std::ffi::OsString;
use std::path::PathBuf;

pub use argv::{parse, RunLine};
pub use image::ImageConfig;

use crate::bundle::{is_static_linux_executable, BUNDLED_BINARY};
use crate::docker_flags::{docker_mounts, mount_args, DockerMounts, FlagFormat};
use crate::manifest::{self, Manifest};
use crate::ownership::{self, Userns};
use crate::{selinux, Engine, Error, Result};

/// What [`prepare`] needs from the front end.
pub struct RunOptions<'a> {
    /// A static Linux `caw` to bundle when the auth dir is set up here.
    pub embedded_binary: Option<&'static [u8]>,
    /// Makes sure the host sync runs for these mounts (it starts a process
    /// that outlives the caller); called before the container starts.
    pub ensure_sync: &'a dyn Fn(&DockerMounts),
}

/// The engine program and its arguments for `line` (see the module docs).
pub struct Prepared {
    /// The engine's program (`docker`, `podman`).
    pub program: String,
    /// Its arguments, starting with `run`.
    pub args: Vec<OsString>,
}

/// Choose the engine (see [`Engine::choose`]), refuse a mode that cannot
/// keep caw's guarantees (see [`ownership::rules`]), set up, start the
/// sync, inspect the image when needed, and build the engine's command line
/// for `line`, with the SELinux label on the mounts where one is needed.
pub fn prepare(line: &RunLine, options: &RunOptions<'_>) -> Result<Prepared> {
    let engine = Engine::choose(line.engine.as_deref())?;
    line.check_engine(engine)?;
    let label = selinux::Label::choose(
        line.selinux_label.as_deref(),
        std::path::Path::new(selinux::ENFORCE_FILE),
    )?;
    // Refuse before anything is set up or started.
    let rules = ownership::rules(engine, ownership::probe(engine)?, &Userns::of(line))?;
    log::debug!("{engine}: ownership rules {rules:?}");
    let program = engine.program().to_string();
    let auth_dir = ready_auth_dir(line, options.embedded_binary)?;
    let manifest = Manifest::load(&auth_dir)?;
    let mounts = docker_mounts(Some(&auth_dir))?;
    (options.ensure_sync)(&mounts);
    // The JSON form's rule: paths may hold white space (no shell splits
    // them here), not `:`.
    let mut mount_args = mount_args(&mounts.mounts, FlagFormat::Json)?;
    label.apply(&mut mount_args);
    let needs_image = line.user.is_none() || (line.command.is_empty() && line.entrypoint.is_none());
    let image = if needs_image {
        image::inspect(&program, &line.image)?
    } else {
        ImageConfig::default()
    };
    let image_name = line.image.to_string_lossy().into_owned();
    let user = agent_user(line.user.as_deref(), &image).map_err(|reason| Error::NoAgentUser {
        image: image_name.clone(),
        reason,
    })?;
    let command = main_command(line, &image);
    if command.is_empty() {
        return Err(Error::NoCommand { image: image_name });
    }
    let args = engine_argv(line, &mount_args, &manifest.mount_point, &user, &command);
    Ok(Prepared { program, args })
}

/// The auth dir, set up first when it has no manifest, with the bundled
/// container `caw` checked.
fn ready_auth_dir(line: &RunLine, embedded_binary: Option<&'static [u8]>) -> Result<PathBuf> {
    let auth_dir = crate::auth_dir::resolve(line.auth_dir.as_deref())?;
    if !auth_dir.join(manifest::MANIFEST_FILE).exists() {
        crate::setup(&crate::SetupOptions {
            agents: line.agents.clone(),
            auth_dir: Some(auth_dir.clone()),
            embedded_binary,
            hold_refresh_token: line.hold_refresh_token,
            ..Default::default()
        })?;
    } else if line.hold_refresh_token {
        manifest::require_held_refresh_tokens(&auth_dir)?;
    } else if !line.agents.is_empty() {
        log::info!(
            "`{}` is already set up; --agents applies only to a new auth dir \
             (run `caw auth setup --agents …` to change it)",
            auth_dir.display()
        );
    }
    let bundled = auth_dir.join(BUNDLED_BINARY);
    if !is_static_linux_executable(&bundled) {
        return Err(Error::MissingBundledBinary { path: bundled });
    }
    Ok(auth_dir)
}

/// The agent user: `given`, else the image's `USER` (a name or uid, with
/// its `:group` when it has one), unless that is root or empty (the reason).
pub fn agent_user(given: Option<&str>, image: &ImageConfig) -> Result<String, String> {
    if let Some(u) = given {
        return Ok(u.to_string());
    }
    let user = image.user.split(':').next().unwrap_or("");
    if user.is_empty() || user == "root" || user == "0" {
        return Err(if user.is_empty() {
            "the image sets no USER".to_string()
        } else {
            format!("the image's USER is `{}`", image.user)
        });
    }
    Ok(image.user.clone())
}

/// The command `auth exec` runs (docker's rule, see the module docs).
pub fn main_command(line: &RunLine, image: &ImageConfig) -> Vec<OsString> {
    let entrypoint: Vec<OsString> = match &line.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.into()],
        None => image.entrypoint.iter().map(Into::into).collect(),
    };
    let args: Vec<OsString> = if !line.command.is_empty() || line.entrypoint.is_some() {
        line.command.clone()
    } else {
        image.cmd.iter().map(Into::into).collect()
    };
    entrypoint.into_iter().chain(args).collect()
}

/// `<engine> run …` (without the program) once the mounts are known.
pub fn engine_argv(
    line: &RunLine,
    mounts: &[String],
    mount_point: &str,
    user: &str,
    command: &[OsString],
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["run".into()];
    argv.extend(line.engine_args.iter().cloned());
    argv.extend(mounts.iter().map(Into::into));
    for a in ["--user", "0", "--entrypoint"] {
        argv.push(a.into());
    }
    argv.push(format!("{mount_point}/{BUNDLED_BINARY}").into());
    argv.push(line.image.clone());
    for a in [
        "auth",
        "exec",
        "--user",
        user,
        "--mount-point",
        mount_point,
        "--",
    ] {
        argv.push(a.into());
    }
    argv.extend(command.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_agent_user_is_given_or_the_images_non_root_user() {
        let img = |u: &str| ImageConfig {
            user: u.into(),
            ..Default::default()
        };
        assert_eq!(agent_user(Some("x"), &img("root")).unwrap(), "x");
        assert_eq!(agent_user(None, &img("node")).unwrap(), "node");
        assert_eq!(agent_user(None, &img("1000:1000")).unwrap(), "1000:1000");
        assert_eq!(agent_user(Some("0"), &img("node")).unwrap(), "0");
        for root in ["", "root", "0", "0:0", "root:staff"] {
            assert!(agent_user(None, &img(root)).is_err(), "{root:?}");
        }
    }

    #[test]
    fn the_command_follows_dockers_entrypoint_and_cmd_rule() {
        let image = ImageConfig {
            user: String::new(),
            entrypoint: vec!["/init.sh".into()],
            cmd: vec!["serve".into(), "--port".into()],
        };
        let line = |cmd: &[&str], ep: Option<&str>| RunLine {
            command: os(cmd),
            entrypoint: ep.map(str::to_string),
            hold_refresh_token: false,
            ..Default::default()
        };
        assert_eq!(
            main_command(&line(&[], None), &image),
            os(&["/init.sh", "serve", "--port"])
        );
        assert_eq!(
            main_command(&line(&["sh"], None), &image),
            os(&["/init.sh", "sh"])
        );
        assert_eq!(
            main_command(&line(&[], Some("/bin/x")), &image),
            os(&["/bin/x"])
        );
        assert_eq!(main_command(&line(&["a"], Some("")), &image), os(&["a"]));
        let bare = ImageConfig::default();
        assert!(main_command(&line(&[], None), &bare).is_empty());
    }

    #[test]
    fn engine_argv_puts_caw_in_front_of_the_command() {
        let line = RunLine {
            engine_args: os(&["-d", "--name", "n"]),
            image: "img".into(),
            ..Default::default()
        };
        let mounts = vec!["-v".to_string(), "/h/a:/tmp/caw_auth:ro".to_string()];
        let argv = engine_argv(&line, &mounts, "/tmp/caw_auth", "node", &os(&["cat", "f"]));
        assert_eq!(
            argv,
            os(&[
                "run",
                "-d",
                "--name",
                "n",
                "-v",
                "/h/a:/tmp/caw_auth:ro",
                "--user",
                "0",
                "--entrypoint",
                "/tmp/caw_auth/bin/caw",
                "img",
                "auth",
                "exec",
                "--user",
                "node",
                "--mount-point",
                "/tmp/caw_auth",
                "--",
                "cat",
                "f"
            ])
        );
    }
}
