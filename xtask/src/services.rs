//! The real servers weft's tests and benches talk to, installed from the
//! machine's package registries where they are missing: never a mock, and
//! nothing a person has to install by hand.
//!
//! Tests start their own instance of each server (own port, own data
//! directory) and stop it; this module only makes sure the programs exist.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A program (or Python module) a test or bench runs, and where it comes
/// from.
pub struct Service {
    /// The executable looked for on the PATH (and in the sbin directories,
    /// where Debian puts daemons); for a Python module, its import name.
    pub program: &'static str,
    /// Whether `program` is a Python module (`python3 -c "import ..."`)
    /// rather than an executable.
    pub python_module: bool,
    /// How to get it when it is missing.
    pub source: Source,
    /// Who needs it (printed).
    pub why: &'static str,
}

/// Where a program is installed from.
pub enum Source {
    /// A Debian package, by `apt-get install`.
    Apt(&'static str),
    /// A PyPI requirement, by `pip install`.
    Pip(&'static str),
}

/// What `cargo xtask test-all` needs: the servers of the integration tests.
pub const FOR_TESTS: &[Service] = &[
    Service {
        program: "nats-server",
        python_module: false,
        source: Source::Apt("nats-server"),
        why: "weft-cluster's tests run against a real NATS JetStream server",
    },
    Service {
        program: "mariadbd",
        python_module: false,
        source: Source::Apt("mariadb-server"),
        why: "the coroutine_libraries example's test queries a real MariaDB server",
    },
];

/// What the peers of `cargo xtask bench weft-cluster` need on top.
pub const FOR_CLUSTER_BENCH: &[Service] = &[
    Service {
        program: "redis-server",
        python_module: false,
        source: Source::Apt("redis-server"),
        why: "Celery's broker, the peer of the weft-cluster bench",
    },
    Service {
        program: "celery",
        python_module: false,
        source: Source::Pip("celery[redis]>=5,<6"),
        why: "Celery 5, the peer of the weft-cluster bench",
    },
];

/// What the Python peers of `cargo xtask bench weft-process` need beyond
/// the standard library.
pub const FOR_PROCESS_BENCH: &[Service] = &[Service {
    program: "loky",
    python_module: true,
    source: Source::Pip("loky>=3,<4"),
    why: "loky, the crash-surviving ProcessPoolExecutor peer of the weft-process bench",
}];

/// The Python interpreter the peers run on.
fn python() -> Option<&'static str> {
    ["python3", "python"]
        .into_iter()
        .find(|p| locate(p).is_some())
}

/// Where `s` is, when it is there: a path, or the module's import name.
fn present(s: &Service) -> Option<String> {
    if s.python_module {
        let ok = python().is_some_and(|py| {
            Command::new(py)
                .args(["-c", &format!("import {}", s.program)])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|st| st.success())
        });
        ok.then(|| format!("python module {}", s.program))
    } else {
        locate(s.program).map(|p| p.display().to_string())
    }
}

/// Where `program` is: on the PATH or in an sbin directory.
pub fn locate(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Installs whichever of `services` is missing. Errors say what to install
/// by hand when this machine cannot (no apt-get, not root and no sudo).
pub fn ensure(services: &[Service]) -> Result<(), String> {
    let missing: Vec<&Service> = services.iter().filter(|s| present(s).is_none()).collect();
    for s in services {
        if let Some(p) = present(s) {
            println!("services: {} at {p} ({})", s.program, s.why);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let apt: Vec<&str> = missing
        .iter()
        .filter_map(|s| match s.source {
            Source::Apt(p) => Some(p),
            Source::Pip(_) => None,
        })
        .collect();
    let pip: Vec<&str> = missing
        .iter()
        .filter_map(|s| match s.source {
            Source::Pip(p) => Some(p),
            Source::Apt(_) => None,
        })
        .collect();
    for s in &missing {
        println!(
            "services: {} is missing ({}); installing it",
            s.program, s.why
        );
    }
    if !apt.is_empty() {
        apt_install(&apt)?;
    }
    if !pip.is_empty() {
        let python =
            python().ok_or("services: python3 is needed to pip-install the Python peers")?;
        let mut args = vec!["-m", "pip", "install", "--quiet"];
        args.extend(&pip);
        run(python, &args, &[])?;
    }
    let still: Vec<&str> = missing
        .iter()
        .filter(|s| present(s).is_none())
        .map(|s| s.program)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "services: still missing after the install: {}",
            still.join(", ")
        ))
    }
}

/// `apt-get install` without starting the packages' system services (the
/// tests start their own instances): a `policy-rc.d` that refuses every
/// start is put in place for the install, where none exists, and removed.
fn apt_install(packages: &[&str]) -> Result<(), String> {
    if locate("apt-get").is_none() {
        return Err(format!(
            "services: no apt-get here; install these with your package manager: {}",
            packages.join(" ")
        ));
    }
    // Root installs directly; anyone else through `sudo -n` (never a prompt).
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let placed = root && !policy.exists() && {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            policy,
            "#!/bin/sh\n# weft xtask: no service starts during the install\nexit 101\n",
        )
        .and_then(|()| std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755)))
        .is_ok()
    };
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    let apt_get = |tail: &[&str]| -> Result<(), String> {
        if root {
            run("apt-get", tail, &env)
        } else {
            let mut args = vec!["-n", "apt-get"];
            args.extend(tail);
            run("sudo", &args, &env)
        }
    };
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(packages);
    // A fresh machine may have no package lists yet: update, then retry.
    let result = apt_get(&install).or_else(|_| {
        apt_get(&["update", "-q"])?;
        apt_get(&install)
    });
    if placed {
        let _ = std::fs::remove_file(policy);
    }
    result.map_err(|e: String| {
        format!(
            "{e}\nservices: could not install {} (run as root, or `sudo apt-get install {}`)",
            packages.join(" "),
            packages.join(" ")
        )
    })
}

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    println!("services: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("services: could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "services: {program} {} failed: {status}",
            args.join(" ")
        ))
    }
}
