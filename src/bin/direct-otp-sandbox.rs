//! The embedded sandbox as a program of its own: the simulated Juspay Direct OTP API on
//! loopback, plus its control API under `/_sandbox/` (OTPs, orders, scripted faults and card
//! flows, settings, webhooks, counters, a reset), for test suites in any language.
//!
//! ```text
//! cargo run --features sandbox-server --bin direct-otp-sandbox -- --port 0
//! ```
//!
//! The first line it prints is the URL (`http://127.0.0.1:PORT`); it serves until killed.
//! `docs/sandbox.md` has the options and curl examples.

use std::process::ExitCode;

use direct_otp::sandbox::{OtpSource, Sandbox, SandboxConfig, SandboxServer};

const USAGE: &str = "\
usage: direct-otp-sandbox [--port PORT] [--key API_KEY] [--otp DIGITS] [--webhook-url URL]

  --port PORT        port on 127.0.0.1 (default 0: any free port)
  --key API_KEY      the API key the sandbox accepts (default sk_sandbox)
  --otp DIGITS       every OTP sent is DIGITS (default: a seeded sequence)
  --webhook-url URL  deliver webhooks to URL (http:// on loopback only)

Prints the URL on its first line, then serves the simulated Juspay API and the control API
under /_sandbox/ (GET /_sandbox/ lists its routes: OTPs, orders, faults, card flows,
settings, webhooks, counters, reset; docs/sandbox.md describes them) until killed. Every
request needs the key as HTTP Basic user name: curl -u KEY: ...";

struct Options {
    port: u16,
    key: String,
    otp: Option<String>,
    webhook_url: Option<String>,
}

fn options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 0,
        key: "sk_sandbox".into(),
        otp: None,
        webhook_url: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let port = value("--port")?;
                options.port = port.parse().map_err(|_| format!("bad port {port:?}"))?;
            }
            "--key" => options.key = value("--key")?,
            "--otp" => options.otp = Some(value("--otp")?),
            "--webhook-url" => options.webhook_url = Some(value("--webhook-url")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.key.is_empty() {
        return Err("--key must not be empty".into());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("direct-otp-sandbox: {problem}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut config = SandboxConfig::new(&options.key);
    config.control_api = true;
    if let Some(otp) = options.otp {
        config = config.with_otp(OtpSource::Fixed(otp));
    }
    if let Some(url) = options.webhook_url {
        config = match config.with_webhook_url(&url) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("direct-otp-sandbox: {e}");
                return ExitCode::from(2);
            }
        };
    }
    let server = match SandboxServer::start_on(Sandbox::new(config), options.port) {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "direct-otp-sandbox: cannot listen on 127.0.0.1:{}: {e}",
                options.port
            );
            return ExitCode::FAILURE;
        }
    };
    println!("{}", server.base_url());
    eprintln!(
        "direct-otp-sandbox: simulated Juspay at {url}, control API at {url}/_sandbox/ \
         (HTTP Basic: the API key as user name); Ctrl-C stops it",
        url = server.base_url()
    );
    loop {
        std::thread::park();
    }
}
