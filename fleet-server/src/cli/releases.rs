//! `simpul-fleet releases keygen|sign|verify`: the release key's tools, for an ops machine
//! (no fleet, no config needed), so the signing key can stay off the server
//! (docs/design/updates.md, "Release keys"); `releases publish|list` over the API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ring::rand::SecureRandom;
use simpul_protocol::release::{Manifest, SignedManifest, parse_public_key, sha256_hex};

use super::client::{ApiArgs, Client, Failure, print_json};
use super::table::{cell, items, render};
use crate::api::releases::SIGNATURE_HEADER as RELEASE_SIGNATURE_HEADER;
use crate::exit;

#[derive(Debug, Subcommand)]
pub enum ReleasesCmd {
    /// Make a release signing key: the private key to `--out` (PKCS#8 PEM, mode 0600), its
    /// public half (hex, what boxes pin in `[update] keys`) to `--out`.pub and stdout.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a release binary: writes `<binary>.sig` (JSON: version, target, SHA-256, size,
    /// public key, signature).
    Sign {
        /// The private key `keygen` made.
        #[arg(long)]
        key: PathBuf,
        /// The release's version (x.y.z).
        #[arg(long)]
        version: String,
        /// The target it is built for: aarch64-unknown-linux-gnu,
        /// armv7-unknown-linux-gnueabihf or x86_64-unknown-linux-gnu.
        #[arg(long)]
        target: String,
        binary: PathBuf,
        /// Where to write the signature. Default: `<binary>.sig`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a binary against its `.sig` and a public key, as a box would.
    Verify {
        /// The public key (64 hex digits).
        #[arg(long)]
        public_key: String,
        binary: PathBuf,
        /// Default: `<binary>.sig`.
        #[arg(long)]
        sig: Option<PathBuf>,
    },
    /// Publish a signed binary to the fleet (ops): its version and target are the
    /// signature's; the fleet checks it against `[releases] keys`.
    Publish {
        binary: PathBuf,
        /// Default: `<binary>.sig`.
        #[arg(long)]
        sig: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The published releases: version, target, size, SHA-256, who and when.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

pub fn run(config: &Path, cmd: ReleasesCmd) -> ExitCode {
    let result = match cmd {
        ReleasesCmd::Keygen { out } => keygen(&out),
        ReleasesCmd::Sign { key, version, target, binary, out } => sign(&key, &version, &target, &binary, out),
        ReleasesCmd::Verify { public_key, binary, sig } => verify(&public_key, &binary, sig),
        ReleasesCmd::Publish { binary, sig, api } => publish(config, &api, &binary, sig),
        ReleasesCmd::List { api } => list(config, &api),
    };
    result.unwrap_or_else(Failure::report)
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(exit::FAILURE, e.to_string())
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())))
}

/// `path` with `suffix` added (`agent` → `agent.sig`).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn keygen(out: &Path) -> Result<ExitCode, Failure> {
    if out.exists() {
        return Err(fail(format!("{} exists: a release key is never overwritten", out.display())));
    }
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut seed).map_err(|_| fail("no randomness for a key"))?;
    let key = SigningKey::from_bytes(&seed);
    let pem = key.to_pkcs8_pem(Default::default()).map_err(fail)?;
    simpul_base::fs::write_atomic(out, pem.as_bytes(), 0o600).map_err(|e| fail(format!("{}: {e}", out.display())))?;
    let public = hex::encode(key.verifying_key().as_bytes());
    let pub_path = suffixed(out, ".pub");
    simpul_base::fs::write_atomic(&pub_path, format!("{public}\n").as_bytes(), 0o644)
        .map_err(|e| fail(format!("{}: {e}", pub_path.display())))?;
    eprintln!("private key: {} (keep it off the server); public key: {}", out.display(), pub_path.display());
    println!("{public}");
    Ok(exit::code(exit::OK))
}

fn sign(key: &Path, version: &str, target: &str, binary: &Path, out: Option<PathBuf>) -> Result<ExitCode, Failure> {
    let pem = std::fs::read_to_string(key).map_err(|e| fail(format!("{}: {e}", key.display())))?;
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| fail(format!("not an ed25519 private key: {e}")))?;
    let bytes = read(binary)?;
    let signed = Manifest::of(&bytes, version, target).map_err(fail)?.sign(&key);
    let text = serde_json::to_string_pretty(&signed).map_err(fail)?;
    let out = out.unwrap_or_else(|| suffixed(binary, ".sig"));
    simpul_base::fs::write_atomic(&out, text.as_bytes(), 0o644).map_err(|e| fail(format!("{}: {e}", out.display())))?;
    eprintln!("signed {} {version} for {target}: {}", binary.display(), out.display());
    Ok(exit::code(exit::OK))
}

fn verify(public_key: &str, binary: &Path, sig: Option<PathBuf>) -> Result<ExitCode, Failure> {
    let key = parse_public_key(public_key).map_err(fail)?;
    let sig = sig.unwrap_or_else(|| suffixed(binary, ".sig"));
    let signed: SignedManifest = serde_json::from_slice(&read(&sig)?)
        .map_err(|e| fail(format!("{}: not a release signature: {e}", sig.display())))?;
    let bytes = read(binary)?;
    signed.verify(&[key]).map_err(fail)?;
    signed.check_binary(&sha256_hex(&bytes), bytes.len() as u64).map_err(fail)?;
    let m = &signed.manifest;
    println!("OK: {} is release {} for {}, signed by {}", binary.display(), m.version, m.target, signed.public_key);
    Ok(exit::code(exit::OK))
}

fn publish(config: &Path, args: &ApiArgs, binary: &Path, sig: Option<PathBuf>) -> Result<ExitCode, Failure> {
    let sig = sig.unwrap_or_else(|| suffixed(binary, ".sig"));
    let signed: SignedManifest = serde_json::from_slice(&read(&sig)?)
        .map_err(|e| fail(format!("{}: not a release signature: {e}", sig.display())))?;
    let header = serde_json::to_string(&signed).map_err(fail)?;
    let m = &signed.manifest;
    let path = format!("/api/v1/releases/{}/{}", m.version, m.target);
    let v = Client::new(args, config)?.put_bytes(&path, read(binary)?, (RELEASE_SIGNATURE_HEADER, &header))?;
    if args.json {
        return Ok(print_json(&v));
    }
    println!("published {} for {} ({} bytes)", m.version, m.target, m.size);
    Ok(exit::code(exit::OK))
}

fn list(config: &Path, args: &ApiArgs) -> Result<ExitCode, Failure> {
    let v = Client::new(args, config)?.call(reqwest::Method::GET, "/api/v1/releases", None)?;
    if args.json {
        return Ok(print_json(&v));
    }
    let rows: Vec<Vec<String>> = items(&v["releases"])
        .iter()
        .map(|r| ["version", "target", "size", "sha256", "published_by"].iter().map(|k| cell(&r[*k])).collect())
        .collect();
    print!("{}", render(&["VERSION", "TARGET", "SIZE", "SHA256", "BY"], &rows));
    Ok(exit::code(exit::OK))
}
