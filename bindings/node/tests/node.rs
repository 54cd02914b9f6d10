//! The Node package's whole check, as one Rust test (`cargo test --workspace` runs it):
//!
//! 1. finds `node` >= 18 (else `SKIPPED`, and a failure when `CI` is set);
//! 2. `npm ci` in `bindings/node` (the dev tools: TypeScript and Node's types; offline:
//!    `SKIPPED` with the reason, a failure under `CI`);
//! 3. builds the native module (`cargo build -p direct-otp-node`, same profile and target
//!    directory: cargo releases its build lock before it runs tests, so this does not
//!    wait) and copies it where the package loads it;
//! 4. compiles the TypeScript (`tsc`), packs the package (`npm pack`) and installs the
//!    tarball into a fresh temporary folder, with no network (the package has no runtime
//!    dependencies);
//! 5. there, runs the Node tests (`node --test`) against the installed package, type-checks
//!    the example against the installed declarations (`tsc`: the `--noEmit` project, emitting
//!    the JavaScript it then runs), and runs it.
//!
//! One line of summary goes to stderr (the test counts); `--nocapture` shows every step.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// Says why the suite could not run: a failure under CI, a visible skip elsewhere.
fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("Node tests cannot run under CI: {reason}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: Node tests ({reason})");
}

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo_root() -> PathBuf {
    package_dir().join("..").join("..")
}

/// Runs a command, its output captured; a command that cannot start is `None`.
fn run(cmd: &mut Command) -> Option<Output> {
    cmd.env_remove("NODE_OPTIONS").output().ok()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
fn must(what: &str, cmd: &mut Command) -> String {
    let out = run(cmd).unwrap_or_else(|| panic!("{what}: could not start {cmd:?}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `node`'s major version, if a node runs.
fn node_major(node: &str) -> Option<u32> {
    let out = run(Command::new(node).arg("--version"))?;
    let version = text(&out.stdout);
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The profile directory this test was built into (`target/debug`, `target/release`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/node-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// The counts of a `node --test` run (TAP's closing comments).
fn counts(tap: &str) -> (u64, u64, u64) {
    let get = |name: &str| {
        tap.lines()
            .rev()
            .find_map(|l| l.strip_prefix(&format!("# {name} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("tests"), get("pass"), get("fail"))
}

/// A temporary folder removed at the end (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "direct-otp-node-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn node_package_builds_packs_installs_and_passes_its_tests() {
    let started = Instant::now();
    let node = std::env::var("NODE").unwrap_or_else(|_| "node".into());
    match node_major(&node) {
        Some(major) if major >= 18 => {}
        Some(major) => return skip(&format!("node >= 18 not found: {node} is v{major}")),
        None => return skip("node >= 18 not found"),
    }
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
    let pkg = package_dir();
    let tsc = pkg.join("node_modules/typescript/bin/tsc");

    // 2. The dev tools.
    let ci = run(Command::new(&npm)
        .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
        .current_dir(&pkg));
    match ci {
        None => return skip(&format!("{npm} could not start")),
        Some(out) if !out.status.success() => {
            let stderr = text(&out.stderr);
            // npm's own lines ("npm error code ENOTCACHED", "npm error network ..."), not
            // the pointer to its log.
            let why: Vec<&str> = stderr
                .lines()
                .filter(|l| l.starts_with("npm error") && !l.contains("complete log"))
                .take(2)
                .collect();
            return skip(&format!(
                "npm ci failed, offline? {}",
                if why.is_empty() {
                    "no message".to_owned()
                } else {
                    why.join("; ")
                }
            ));
        }
        Some(_) => {}
    }
    let tools_ready = started.elapsed();

    // 3. The native module, as the package loads it.
    let profile = profile_dir();
    let mut build = Command::new(env!("CARGO"));
    build.args(["build", "-p", "direct-otp-node", "--target-dir"]);
    build.arg(profile.parent().expect("the target directory"));
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    must("cargo build -p direct-otp-node", build.current_dir(&pkg));
    let library = profile.join("libdirect_otp_node.so");
    assert!(library.exists(), "{} was not built", library.display());
    let module = pkg.join("direct-otp.linux-x64-gnu.node");
    std::fs::copy(&library, &module).expect("copy the native module into the package");
    // A debug build's debug info is most of its size (and of the tarball's): drop it when
    // binutils' strip is there (the module works either way).
    let _ = run(Command::new("strip").arg("--strip-debug").arg(&module));
    let native_ready = started.elapsed();

    // 4. TypeScript, the tarball, a fresh install.
    must(
        "tsc",
        Command::new(&node)
            .arg(&tsc)
            .args(["-p", "tsconfig.json"])
            .current_dir(&pkg),
    );
    let packs = TempDir::new("pack");
    let packed = must(
        "npm pack",
        Command::new(&npm)
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&packs.0)
            .current_dir(&pkg),
    );
    let tarball = packs.0.join(
        packed
            .lines()
            .last()
            .expect("npm pack names the tarball")
            .trim(),
    );
    assert!(tarball.exists(), "{} missing", tarball.display());
    let tarball_size = std::fs::metadata(&tarball).map_or(0, |m| m.len());

    let app = TempDir::new("app");
    std::fs::write(
        app.0.join("package.json"),
        r#"{"name":"direct-otp-smoke","version":"1.0.0","private":true}"#,
    )
    .unwrap();
    must(
        "npm install of the tarball (offline)",
        Command::new(&npm)
            .args(["install", "--offline", "--no-audit", "--no-fund"])
            .arg(&tarball)
            .current_dir(&app.0),
    );
    let installed = app.0.join("node_modules/direct-otp");
    for file in [
        "package.json",
        "README.md",
        "index.mjs",
        "lib/index.js",
        "lib/index.d.ts",
        "direct-otp.linux-x64-gnu.node",
    ] {
        assert!(installed.join(file).exists(), "the tarball lacks {file}");
    }
    assert!(
        !installed.join("src").exists() && !installed.join("test").exists(),
        "the tarball carries sources or tests"
    );
    copy_dir(&pkg.join("test"), &app.0.join("test"));
    copy_dir(&pkg.join("examples"), &app.0.join("examples"));
    // Node's types for the example's type check (a dev tool, not the package's dependency).
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        pkg.join("node_modules/@types"),
        app.0.join("node_modules/@types"),
    )
    .expect("link @types");
    let installed_at = started.elapsed();

    // 5. The tests against the installed package.
    let mut tests: Vec<String> = std::fs::read_dir(app.0.join("test"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.mjs") || n.ends_with(".test.cjs"))
        .map(|n| format!("test/{n}"))
        .collect();
    tests.sort();
    assert!(tests.len() >= 8, "test files: {tests:?}");
    let summary_file = app.0.join("race-summary.txt");
    let out = run(Command::new(&node)
        .arg("--test")
        .args(&tests)
        .env("DIRECT_OTP_REPO", repo_root())
        .env("RACE_SUMMARY", &summary_file)
        .current_dir(&app.0))
    .expect("node --test");
    let tap = text(&out.stdout);
    let (total, passed, failed) = counts(&tap);
    if !out.status.success() || failed > 0 || passed == 0 {
        let failures: Vec<&str> = tap
            .split("\nnot ok ")
            .skip(1)
            .map(|f| f.split("\n# Subtest").next().unwrap_or(f))
            .collect();
        panic!(
            "node --test: {passed} passed, {failed} failed of {total} ({})\n{}\n--- stderr\n{}",
            out.status,
            failures.join("\n---\nnot ok "),
            text(&out.stderr)
        );
    }
    let tests_done = started.elapsed();

    // The example: type-checked against the installed declarations (examples/tsconfig.json
    // is `noEmit`; the same check, emitting JavaScript to run), then run.
    must(
        "tsc on the examples",
        Command::new(&node)
            .arg(&tsc)
            .args([
                "-p",
                "examples/tsconfig.json",
                "--noEmit",
                "false",
                "--rootDir",
                "examples",
                "--outDir",
                "examples-out",
            ])
            .current_dir(&app.0),
    );
    let example = must(
        "the quick start example",
        Command::new(&node)
            .arg("examples-out/quickstart.js")
            .current_dir(&app.0),
    );
    assert!(
        example.contains("approved CHARGED paid: true"),
        "the example did not pay: {example}"
    );

    let race = std::fs::read_to_string(&summary_file).unwrap_or_default();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "node: {passed} passed, {failed} failed ({total} tests, {} files) on the installed {} ({} kB); example type-checked and paid; \
         {:.1} s (npm ci {:.1} s, native {:.1} s, tsc+pack+install {:.1} s, node --test {:.1} s, example {:.1} s)",
        tests.len(),
        tarball.file_name().unwrap_or_default().to_string_lossy(),
        tarball_size / 1024,
        started.elapsed().as_secs_f64(),
        tools_ready.as_secs_f64(),
        (native_ready - tools_ready).as_secs_f64(),
        (installed_at - native_ready).as_secs_f64(),
        (tests_done - installed_at).as_secs_f64(),
        (started.elapsed() - tests_done).as_secs_f64(),
    );
    if !race.is_empty() {
        let _ = write!(err, "node {race}");
    }
}
