//! Signed access and refresh tokens (JWT, HMAC). Separate keys per kind, the
//! algorithm pinned, and a `typ` claim so neither can stand in for the other.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use locker_core::clock::Millis;
use locker_core::config::{AuthConfig, JwtAlgorithm};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
    /// The operators' console's session cookie: signed with the access key,
    /// told apart by its `typ`.
    Console,
}

/// How long a console sign-in lasts.
const CONSOLE_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The login (session) the token belongs to.
    pub sid: String,
    pub jti: String,
    pub typ: TokenKind,
    pub iat: i64,
    pub exp: i64,
}

pub struct Issued {
    pub token: String,
    pub jti: String,
    pub expires_at: Millis,
}

struct KeyPair {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

pub struct TokenKeys {
    header: Header,
    validation: Validation,
    access: KeyPair,
    refresh: KeyPair,
    console: KeyPair,
}

/// How far ahead of this instance's clock a token's `iat` may be.
const IAT_SLACK_MS: Millis = 60_000;

impl TokenKeys {
    pub fn new(config: &AuthConfig) -> Self {
        let algorithm = match config.algorithm {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::HS384 => Algorithm::HS384,
            JwtAlgorithm::HS512 => Algorithm::HS512,
        };
        let mut validation = Validation::new(algorithm);
        // Expiry is checked against the application clock, below.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub", "iat", "jti"]);
        let pair = |secret: &secrecy::SecretString, ttl| KeyPair {
            encoding: EncodingKey::from_secret(secret.expose_secret().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            ttl,
        };
        Self {
            header: Header::new(algorithm),
            validation,
            access: pair(&config.access_secret, config.access_ttl),
            refresh: pair(&config.refresh_secret, config.refresh_ttl),
            console: pair(&config.access_secret, CONSOLE_TTL),
        }
    }

    fn keys(&self, kind: TokenKind) -> &KeyPair {
        match kind {
            TokenKind::Access => &self.access,
            TokenKind::Refresh => &self.refresh,
            TokenKind::Console => &self.console,
        }
    }

    pub fn ttl(&self, kind: TokenKind) -> Duration {
        self.keys(kind).ttl
    }

    pub fn issue(
        &self,
        kind: TokenKind,
        user_id: i64,
        session_id: &str,
        now: Millis,
    ) -> anyhow::Result<Issued> {
        let keys = self.keys(kind);
        let jti = uuid::Uuid::new_v4().to_string();
        let expires_at = now + keys.ttl.as_millis() as Millis;
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id.to_owned(),
            jti: jti.clone(),
            typ: kind,
            iat: now / 1000,
            exp: expires_at / 1000,
        };
        let token = encode(&self.header, &claims, &keys.encoding)?;
        Ok(Issued {
            token,
            jti,
            expires_at,
        })
    }

    /// The claims of a genuine, unexpired token of `kind`; `None` for anything
    /// else (forged, tampered, wrong algorithm or key, wrong kind, expired).
    pub fn verify(&self, kind: TokenKind, token: &str, now: Millis) -> Option<Claims> {
        let claims = decode::<Claims>(token, &self.keys(kind).decoding, &self.validation)
            .ok()?
            .claims;
        // A token issued in the future was not issued by this clock; a minute
        // of slack covers instances whose clocks differ a little.
        let issued_in_time = claims.iat * 1000 <= now + IAT_SLACK_MS;
        (claims.typ == kind && claims.exp * 1000 > now && issued_in_time).then_some(claims)
    }
}
