//! A MySQL or MariaDB login as a health check, spoken over any stream (so over SSH it
//! starts on the login node like every probe): the server's greeting, which carries its
//! version, then a `mysql_native_password` login when the probe knows a user.
//!
//! The protocol is the client/server protocol 4.1 (MySQL 4.1 and later, every MariaDB):
//! packets of a 3-byte little-endian length and a sequence number. A server whose user
//! authenticates with another plugin (MySQL 8's `caching_sha2_password` needs TLS or its
//! RSA key for a first login) passes once it asks for that plugin: it is up and knows
//! the user; the message says the password was not checked.

use std::fmt;

use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ProbeResult;

/// A password the probe sends and never shows: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

const LONG_PASSWORD: u32 = 0x1;
const PROTOCOL_41: u32 = 0x200;
const TRANSACTIONS: u32 = 0x2000;
const SECURE_CONNECTION: u32 = 0x8000;
const PLUGIN_AUTH: u32 = 0x8_0000;
const NATIVE: &str = "mysql_native_password";
/// utf8mb4_general_ci: every server since MySQL 5.5.3 knows it.
const CHARSET: u8 = 45;

/// The server's greeting, as far as the login needs it.
#[derive(Debug, PartialEq, Eq)]
struct Greeting {
    version: String,
    capabilities: u32,
    scramble: Vec<u8>,
}

/// One attempt: read the greeting, log in as `user` (with `password`) when given, end
/// with `COM_QUIT`.
pub(super) async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    user: Option<&str>,
    password: &Secret,
) -> Result<ProbeResult, String> {
    let (_, greeting) = read_packet(stream).await?;
    let greeting = parse_greeting(&greeting)?;
    let version = Some(greeting.version.clone());
    let Some(user) = user else {
        return Ok(ProbeResult {
            healthy: true,
            response: format!(
                "{} greeted; no login tried (the service names no MYSQL_USER or MYSQL_ROOT_PASSWORD)",
                greeting.version
            ),
            version,
        });
    };
    if greeting.capabilities & PROTOCOL_41 == 0 {
        return Err(format!(
            "{} does not speak protocol 4.1; this check logs in with it",
            greeting.version
        ));
    }
    let plugin_auth = greeting.capabilities & PLUGIN_AUTH != 0;
    let answer = handshake_response(user, password, &greeting.scramble, plugin_auth);
    write_packet(stream, 1, &answer).await?;
    let mut verdict = read_packet(stream).await?;
    // An auth switch to mysql_native_password with a new scramble is answered once.
    if let Some((plugin, data)) = auth_switch(&verdict.1) {
        if plugin == NATIVE {
            let seq = verdict.0.wrapping_add(1);
            write_packet(stream, seq, &native_scramble(password, &data)).await?;
            verdict = read_packet(stream).await?;
        } else {
            return Ok(ProbeResult {
                healthy: true,
                response: format!(
                    "{} asked {user} for {plugin}: up and knows the user (the password is not checked with that plugin)",
                    greeting.version
                ),
                version,
            });
        }
    }
    let payload = verdict.1;
    let result = match payload.first() {
        Some(0x00) => ProbeResult {
            healthy: true,
            response: format!("logged in to {} as {user}", greeting.version),
            version,
        },
        Some(0xff) => ProbeResult {
            healthy: false,
            response: format!(
                "{} refused the login as {user}: {}",
                greeting.version,
                error_text(&payload)
            ),
            version,
        },
        _ => ProbeResult {
            healthy: true,
            response: format!(
                "{} asked {user} for more authentication: up and knows the user (the password is not checked)",
                greeting.version
            ),
            version,
        },
    };
    // COM_QUIT; the server closes the connection, nothing to wait for.
    let _ = write_packet(stream, 0, &[0x01]).await;
    Ok(result)
}

async fn read_packet<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(u8, Vec<u8>), String> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "the connection closed before the server spoke".to_owned()
        } else {
            format!("reading from the server: {e}")
        }
    })?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len > 1 << 16 {
        return Err(format!(
            "a {len}-byte packet: not a MySQL server's greeting or answer"
        ));
    }
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .await
        .map_err(|e| format!("reading from the server: {e}"))?;
    Ok((header[3], payload))
}

async fn write_packet<S: AsyncWrite + Unpin>(
    stream: &mut S,
    seq: u8,
    payload: &[u8],
) -> Result<(), String> {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut packet = Vec::with_capacity(payload.len() + 4);
    packet.extend_from_slice(&[len[0], len[1], len[2], seq]);
    packet.extend_from_slice(payload);
    stream
        .write_all(&packet)
        .await
        .map_err(|e| format!("writing to the server: {e}"))
}

/// `ERROR 1045 (28000): Access denied ...` from an ERR packet's payload.
fn error_text(payload: &[u8]) -> String {
    if payload.len() < 3 {
        return "an empty error".into();
    }
    let code = u16::from_le_bytes([payload[1], payload[2]]);
    let rest = &payload[3..];
    let (state, message) = match rest.first() {
        Some(b'#') if rest.len() >= 6 => (
            Some(String::from_utf8_lossy(&rest[1..6]).into_owned()),
            &rest[6..],
        ),
        _ => (None, rest),
    };
    let message: String = String::from_utf8_lossy(message).chars().take(300).collect();
    match state {
        Some(state) => format!("ERROR {code} ({state}): {message}"),
        None => format!("ERROR {code}: {message}"),
    }
}

fn parse_greeting(p: &[u8]) -> Result<Greeting, String> {
    match p.first() {
        Some(0xff) => {
            return Err(format!(
                "the server refused the connection: {}",
                error_text(p)
            ));
        }
        Some(10) => {}
        Some(other) => {
            return Err(format!(
                "not a MySQL greeting (protocol {other}, where MySQL and MariaDB send 10)"
            ));
        }
        None => return Err("an empty greeting".into()),
    }
    let short = || "a greeting cut short".to_owned();
    let nul = p[1..].iter().position(|&b| b == 0).ok_or_else(short)? + 1;
    let version = String::from_utf8_lossy(&p[1..nul]);
    // MariaDB prefixes `5.5.5-` for clients that read the major version from the start.
    let version = match version.strip_prefix("5.5.5-") {
        Some(rest) if rest.contains("MariaDB") => rest.to_owned(),
        _ => version.into_owned(),
    };
    // Connection id (4), the scramble's first 8 bytes, a filler byte.
    let mut at = nul + 1 + 4;
    let mut scramble = p.get(at..at + 8).ok_or_else(short)?.to_vec();
    at += 9;
    let low = p.get(at..at + 2).ok_or_else(short)?;
    let mut capabilities = u32::from(u16::from_le_bytes([low[0], low[1]]));
    at += 2;
    // Charset (1), status (2), the capabilities' upper half (2), the scramble's length
    // (1), 10 reserved bytes, then the rest of the scramble: MySQL 4.1 and later.
    if let Some(high) = p.get(at + 3..at + 5) {
        capabilities |= u32::from(u16::from_le_bytes([high[0], high[1]])) << 16;
        let total = usize::from(p[at + 5]);
        at += 16;
        let rest = total.saturating_sub(8).max(13);
        let tail = p.get(at..at + rest).ok_or_else(short)?;
        // The last byte is a NUL terminator, not part of the 20-byte scramble.
        scramble.extend_from_slice(&tail[..tail.len() - 1]);
    }
    Ok(Greeting {
        version,
        capabilities,
        scramble,
    })
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`; nothing for no password.
fn native_scramble(password: &Secret, scramble: &[u8]) -> Vec<u8> {
    if password.0.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password.0.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(&scramble[..scramble.len().min(20)]);
    h.update(stage2);
    let mix = h.finalize();
    stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

fn handshake_response(
    user: &str,
    password: &Secret,
    scramble: &[u8],
    plugin_auth: bool,
) -> Vec<u8> {
    let mut flags = LONG_PASSWORD | PROTOCOL_41 | TRANSACTIONS | SECURE_CONNECTION;
    if plugin_auth {
        flags |= PLUGIN_AUTH;
    }
    let auth = native_scramble(password, scramble);
    let mut out = Vec::with_capacity(64 + user.len());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(1u32 << 24).to_le_bytes());
    out.push(CHARSET);
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.push(u8::try_from(auth.len()).unwrap_or(0));
    out.extend_from_slice(&auth);
    if plugin_auth {
        out.extend_from_slice(NATIVE.as_bytes());
        out.push(0);
    }
    out
}

/// An auth switch request (`0xfe`, the plugin's name, its data) as (name, data).
fn auth_switch(payload: &[u8]) -> Option<(String, Vec<u8>)> {
    if payload.first() != Some(&0xfe) || payload.len() < 2 {
        return None;
    }
    let rest = &payload[1..];
    let nul = rest.iter().position(|&b| b == 0)?;
    let name = String::from_utf8_lossy(&rest[..nul]).into_owned();
    let mut data = rest[nul + 1..].to_vec();
    if data.last() == Some(&0) {
        data.pop();
    }
    Some((name, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MariaDB 10.11.19's greeting (its payload, after the 4-byte header), captured from
    /// Debian's `mariadbd` on this project's test cluster.
    fn mariadb_greeting() -> Vec<u8> {
        let hex = "0a352e352e352d31302e31312e31392d4d6172696144422d302b64656231327531000500\
                   000067633f4d4655583c00fef7080200ff81150000000000001d0000006051533034542a\
                   717b3a4d55006d7973716c5f6e61746976655f70617373776f726400";
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_greeting_gives_version_capabilities_and_the_whole_scramble() {
        let g = parse_greeting(&mariadb_greeting()).unwrap();
        assert_eq!(g.version, "10.11.19-MariaDB-0+deb12u1");
        assert_eq!(g.scramble, b"gc?MFUX<`QS04T*q{:MU");
        assert_ne!(g.capabilities & PROTOCOL_41, 0);
        assert_ne!(g.capabilities & PLUGIN_AUTH, 0);
        assert!(parse_greeting(&mariadb_greeting()[..20]).is_err());
        let refused = [0xff, 0x6a, 0x04, b'H', b'o', b's', b't'];
        assert_eq!(
            parse_greeting(&refused).unwrap_err(),
            "the server refused the connection: ERROR 1130: Host"
        );
        assert!(
            parse_greeting(b"HTTP/1.1 400")
                .unwrap_err()
                .contains("not a MySQL greeting")
        );
    }

    #[test]
    fn the_native_scramble_is_the_documented_one() {
        // MySQL's documented example: password "secret" against a known scramble gives
        // SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))); checked here against the
        // formula computed step by step, and its inverse recovers SHA1(pw).
        let scramble = b"01234567890123456789";
        let out = native_scramble(&Secret::new("secret"), scramble);
        assert_eq!(out.len(), 20);
        let stage1 = Sha1::digest(b"secret");
        let stage2 = Sha1::digest(stage1);
        let mut h = Sha1::new();
        h.update(scramble);
        h.update(stage2);
        let mix = h.finalize();
        let back: Vec<u8> = out.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(back, stage1.to_vec());
        assert!(native_scramble(&Secret::default(), scramble).is_empty());
    }

    #[test]
    fn errors_read_as_the_mysql_client_prints_them() {
        let mut p = vec![0xff, 0x15, 0x04, b'#'];
        p.extend_from_slice(b"28000Access denied for user 'bench'@'10.99.0.1'");
        assert_eq!(
            error_text(&p),
            "ERROR 1045 (28000): Access denied for user 'bench'@'10.99.0.1'"
        );
        let switch = b"\xfemysql_native_password\0abcdefghijklmnopqrst\0";
        let (name, data) = auth_switch(switch).unwrap();
        assert_eq!(name, NATIVE);
        assert_eq!(data, b"abcdefghijklmnopqrst");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }
}
