//! The Python package's tests, run by `cargo test` (`--workspace` or `-p direct-otp-python`):
//!
//! 1. finds `python3` >= 3.9 (else says it skipped, and passes, except under `CI`);
//! 2. makes a tools virtual environment under the target directory, once (reused): maturin,
//!    and a wheelhouse of pytest, mypy and httpx (offline: skipped, except under `CI`);
//! 3. builds the wheel with maturin (debug profile, symbols stripped) into a target
//!    directory of its own (`target/tmp/python/cargo`). A nested cargo on the outer target
//!    directory does not block (`cargo test` no longer holds its lock while tests run), but
//!    maturin's PyO3 settings differ from a plain build's, so the two would rebuild each
//!    other's crates;
//! 4. installs the wheel into a FRESH virtual environment (from the wheelhouse, offline) and,
//!    from a directory outside the source tree (so the installed package is what runs),
//!    runs pytest on `bindings/python/tests`, `mypy --strict` on the package, `examples/`,
//!    `tests/` and `bench/`, and the quick start.
//!
//! One line of summary goes to stderr (pytest's counts).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The tools installed once in the tools environment.
const TOOLS: &[&str] = &["maturin>=1.9.4,<2"];
/// What the fresh environment installs (from the wheelhouse) beside the wheel.
const TEST_DEPS: &[&str] = &["pytest>=7", "mypy>=1.5", "httpx>=0.24"];

fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Passes with a SKIPPED line, or fails under CI.
fn skip(why: &str) {
    assert!(!in_ci(), "Python tests cannot run under CI: {why}");
    say(&format!("SKIPPED: Python tests ({why})"));
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `cmd` must succeed; its stdout.
fn check(cmd: &mut Command, what: &str) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A Python 3 interpreter >= 3.9: `$PYTHON`, `python3`, `python`.
fn find_python() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("PYTHON") {
        candidates.push(p.into());
    }
    candidates.push("python3".into());
    candidates.push("python".into());
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args([
                "-c",
                "import sys, venv; sys.exit(0 if sys.version_info >= (3, 9) else 1)",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn bin(venv: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{name}.exe"))
    } else {
        venv.join("bin").join(name)
    }
}

fn make_venv(python: &Path, at: &Path) {
    check(
        Command::new(python).arg("-m").arg("venv").arg(at),
        "python -m venv",
    );
}

#[test]
fn python_package() {
    let started = Instant::now();
    let Some(python) = find_python() else {
        return skip("python3 >= 3.9 not found");
    };
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = here.join("../..").canonicalize().unwrap();
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python");
    std::fs::create_dir_all(&work).unwrap();

    // 2. The tools, once.
    let tools = work.join("tools");
    let wheelhouse = work.join("wheelhouse");
    let stamp = work.join("tools.stamp");
    let wanted = format!("{TOOLS:?} {TEST_DEPS:?}");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let _ = std::fs::remove_dir_all(&tools);
        let _ = std::fs::remove_dir_all(&wheelhouse);
        make_venv(&python, &tools);
        let pip = |args: &[&str]| {
            run(Command::new(bin(&tools, "python"))
                .args(["-m", "pip", "--disable-pip-version-check", "-q"])
                .args(args))
        };
        let installed = pip(&[&["install"], TOOLS].concat());
        let downloaded = pip(&[
            &[
                "download",
                "-d",
                wheelhouse.to_str().unwrap(),
                "--only-binary",
                ":all:",
            ],
            TEST_DEPS,
        ]
        .concat());
        for (what, out) in [("pip install", installed), ("pip download", downloaded)] {
            if !out.status.success() {
                let why = text(&out.stderr);
                let last = why
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                return skip(&format!(
                    "{what} of the test tools failed (offline?): {last}"
                ));
            }
        }
        std::fs::write(&stamp, &wanted).unwrap();
    }

    // 3. The wheel.
    let wheels = work.join("wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    let build = Instant::now();
    check(
        Command::new(bin(&tools, "maturin"))
            .args(["build", "--strip", "--quiet", "-m"])
            .arg(here.join("Cargo.toml"))
            .arg("--out")
            .arg(&wheels)
            .arg("--interpreter")
            .arg(&python)
            .env("CARGO_TARGET_DIR", work.join("cargo"))
            .env_remove("CARGO_BUILD_TARGET_DIR"),
        "maturin build",
    );
    let build_s = build.elapsed().as_secs_f64();
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("maturin built no wheel");
    let wheel_name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        wheel_name.contains("-cp39-abi3-"),
        "one abi3 wheel for CPython >= 3.9, got {wheel_name}"
    );

    // 4. A fresh environment with the wheel, run from outside the source tree.
    let install = Instant::now();
    let venv = work.join("venv");
    let _ = std::fs::remove_dir_all(&venv);
    // Without a pip of its own (the tools' pip installs into it: faster, and offline).
    check(
        Command::new(&python)
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv),
        "python -m venv --without-pip",
    );
    let py = bin(&venv, "python");
    check(
        Command::new(bin(&tools, "python"))
            .args(["-m", "pip", "--disable-pip-version-check", "-q", "--python"])
            .arg(&py)
            .args(["install", "--no-compile", "--no-index", "--find-links"])
            .arg(&wheelhouse)
            .args(TEST_DEPS)
            .arg(&wheel),
        "pip install (offline, from the wheelhouse) of the wheel and the test tools",
    );
    let install_s = install.elapsed().as_secs_f64();
    let outside = work.join("run");
    std::fs::create_dir_all(&outside).unwrap();
    let python_in = |args: &[&str]| {
        let mut c = Command::new(&py);
        c.args(args)
            .current_dir(&outside)
            .env("DIRECT_OTP_REPO", &repo)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME");
        c
    };
    let location = check(
        &mut python_in(&["-c", "import direct_otp; print(direct_otp.__file__)"]),
        "import direct_otp",
    );
    assert!(
        Path::new(location.trim()).starts_with(&venv),
        "the tests must use the installed package, not the source: {location}"
    );

    let tests = here.join("tests");
    let pytest = run(&mut python_in(&[
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        outside.to_str().unwrap(),
        tests.to_str().unwrap(),
    ]));
    let out = text(&pytest.stdout);
    let counts = out
        .lines()
        .rev()
        .find(|l| l.contains(" passed") || l.contains(" failed") || l.contains(" error"))
        .unwrap_or("(no summary)")
        .trim_matches(|c| c == '=' || c == ' ')
        .to_owned();
    assert!(
        pytest.status.success(),
        "pytest failed ({}): {counts}\n--- stdout\n{out}\n--- stderr\n{}",
        pytest.status,
        text(&pytest.stderr)
    );

    let checks = Instant::now();
    let cache = work.join("mypy_cache");
    let examples = here.join("examples");
    let mypy = [
        "-m",
        "mypy",
        "--strict",
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    check(
        python_in(&mypy).args(["-p", "direct_otp"]),
        "mypy --strict -p direct_otp (the installed package)",
    );
    check(python_in(&mypy).arg(&examples), "mypy --strict examples/");
    check(
        python_in(&mypy)
            .arg(here.join("tests"))
            .arg(here.join("bench")),
        "mypy --strict tests/ bench/",
    );
    let quickstart = check(
        &mut python_in(&[examples.join("quickstart.py").to_str().unwrap()]),
        "examples/quickstart.py",
    );
    assert!(
        quickstart.contains("approved CHARGED paid: True"),
        "the quick start did not pay: {quickstart}"
    );

    say(&format!(
        "python: {counts}; mypy --strict clean; quick start paid ({:.1} s); wheel \
         {wheel_name} built in {build_s:.1} s, installed in a fresh venv in {install_s:.1} s; \
         {:.1} s in all",
        checks.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    ));
}
