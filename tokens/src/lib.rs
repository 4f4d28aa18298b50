//! Device tokens for `structure-access`: a device that just authenticated
//! with its access key and secret gets a short-lived token, and a server
//! verifies the token on each request without the secret.
//!
//! The format is [PASETO] `v4.public` (Ed25519 signatures over the claims,
//! as JSON), through the [`pasetors`] crate, so that other languages verify
//! the tokens with their own PASETO libraries; `v4.public.` is also the
//! prefix `scan` and other scanners look for. The footer is
//! `{"kid":"k4.pid.…"}`, the [PASERK] id of the signing key's public half:
//! a verifier holds several public keys and picks by id, so a signing key
//! is rotated by adding the new public key everywhere, signing with the new
//! key, and retiring the old public key once its tokens have expired.
//!
//! The claims (all of them required, no other accepted):
//!
//! | claim | value |
//! |---|---|
//! | `iss` | `structure-access` |
//! | `aud` | the audience the issuer and verifier agree on (a service's name or URL) |
//! | `sub` | the device ID |
//! | `app` | the application ID |
//! | `key` | the access key id that authenticated the device |
//! | `vd` | the key's verifier digest: SHA-256 of the stored verifier, base64url |
//! | `iat`, `nbf` | issued at (RFC 3339 UTC) |
//! | `exp` | expiry (RFC 3339 UTC), at most [`MAX_LIFETIME`] after `iat` |
//!
//! No I/O happens here: the signing key and the time come from the caller.
//! [`TokenVerifier::verify`] checks the signature, the audience and the
//! times; [`Claims::principal`] then derives the device's
//! [`Principal`] again from the server's **current** records, so a token of
//! a deleted, inactive or expired key, of a device out of scope, or of a key
//! whose secret was rotated (its verifier digest changed) stops working as
//! soon as the records say so.
//!
//! ```
//! use structure_access::{AccessKey, Authenticator, Cost, DeviceRecord, HashPolicy, Scope, UnixTime};
//! use structure_access_tokens::{Issuer, SigningKey, TokenVerifier};
//! # use rand_chacha::{ChaCha20Rng, rand_core::{Rng, SeedableRng}};
//! # let mut rng = ChaCha20Rng::seed_from_u64(1);
//!
//! let policy = HashPolicy::default();
//! let new = AccessKey::generate(&mut rng, "app1".parse()?, Scope::Unrestricted, &policy)?;
//! let device = DeviceRecord::new("app1".parse()?, "d1".parse()?);
//! let principal = Authenticator::new(policy).authenticate(new.record.key(), Some(&new.record), &new.secret, &device)?;
//!
//! let mut seed = [0u8; 32];
//! rng.fill_bytes(&mut seed);
//! let signing = SigningKey::from_seed(seed)?;
//! let verifier = TokenVerifier::new("https://api.example", [signing.verifying_key()])?;
//! let issuer = Issuer::new(signing, "https://api.example")?;
//!
//! let now = UnixTime::from_secs(1_800_000_000).unwrap();
//! let issued = issuer.issue(&principal, &new.record, now)?;
//! assert!(issued.token.expose().starts_with("v4.public."));
//!
//! // On a later request: the token, then the records as they are now.
//! let claims = verifier.verify(issued.token.expose(), now.plus_secs(60).unwrap())?;
//! let again = claims.principal(Some(&new.record), Some(&device), now.plus_secs(60).unwrap())?;
//! assert_eq!(again.device_id(), principal.device_id());
//! // An hour later (the default lifetime) it has expired.
//! assert!(verifier.verify(issued.token.expose(), now.plus_secs(3600).unwrap()).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [PASETO]: https://github.com/paseto-standard/paseto-spec
//! [PASERK]: https://github.com/paseto-standard/paserk
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use pasetors::Public;
use pasetors::keys::{AsymmetricPublicKey, AsymmetricSecretKey};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use structure_access::{
    AccessKey, ApplicationId, AuthError, Device, DeviceId, KeyId, Principal, UnixTime,
};
use subtle::ConstantTimeEq;

/// Every device token starts with this (PASETO's header for v4 public tokens).
pub const TOKEN_PREFIX: &str = "v4.public.";

/// The longest token accepted (bytes); longer input is refused before it is
/// decoded. Tokens issued here are about 500 bytes.
pub const MAX_TOKEN_LEN: usize = 2048;

/// A token's lifetime unless the issuer says otherwise: one hour.
pub const DEFAULT_LIFETIME: u64 = 3600;

/// The longest lifetime an issuer may give, and a verifier accepts: a day.
pub const MAX_LIFETIME: u64 = 24 * 3600;

/// How far in the future a token's `iat` may be (clocks of two servers
/// differ a little).
pub const MAX_CLOCK_SKEW: u64 = 60;

/// The longest audience accepted (bytes).
pub const MAX_AUDIENCE_LEN: usize = 256;

/// The `iss` claim of every token.
pub const ISSUER: &str = "structure-access";

/// Why a token was not issued or not accepted, or a key not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a device token: wrong prefix, too long, bad encoding, or claims
    /// that are not the ones expected.
    #[error("malformed device token: {0}")]
    Malformed(&'static str),
    /// Signed by a key this verifier does not hold (unknown, or retired).
    #[error("device token signed by an unknown or retired signing key")]
    UnknownSigningKey,
    /// The signature does not verify: the token was altered, or forged.
    #[error("device token signature does not verify")]
    BadSignature,
    /// Issued for another audience than this verifier's.
    #[error("device token issued for another audience")]
    WrongAudience,
    /// Its expiry has passed.
    #[error("device token expired at `{at}`")]
    Expired {
        /// Its expiry.
        at: UnixTime,
    },
    /// Issued in the future (more than [`MAX_CLOCK_SKEW`] ahead).
    #[error("device token issued at `{at}`, in the future")]
    NotYetValid {
        /// Its `iat`.
        at: UnixTime,
    },
    /// A lifetime of 0 or over [`MAX_LIFETIME`] seconds.
    #[error("device token lifetime of {0} s, expected 1 to 86400")]
    Lifetime(u64),
    /// The audience is empty, too long or not printable ASCII.
    #[error("audience refused: expected 1 to 256 printable ASCII characters")]
    Audience,
    /// The token's key is no longer on file.
    #[error("access key `{key}` of the device token is no longer on file")]
    KeyGone {
        /// The token's key.
        key: KeyId,
    },
    /// The key's secret changed since the token was issued (its verifier
    /// digest differs).
    #[error("access key `{key}` has a new secret since the device token was issued")]
    SecretRotated {
        /// The token's key.
        key: KeyId,
    },
    /// The token's device ([`Claims::device_id`]) is no longer on file.
    #[error("the device of the device token is no longer on file")]
    DeviceGone,
    /// The current records no longer admit the device with the key.
    #[error("device token no longer admitted")]
    Refused(#[source] AuthError),
    /// A key in PASERK form could not be read.
    #[error("signing or verification key refused: expected `{expected}`")]
    Key {
        /// The form expected.
        expected: &'static str,
    },
    /// Signing failed (it does not, for a valid key).
    #[error("device token could not be signed")]
    Sign,
}

impl TokenError {
    /// A short code for audit trails and metrics: `token_malformed`,
    /// `token_unknown_signing_key`, `token_bad_signature`,
    /// `token_wrong_audience`, `token_expired`, `token_not_yet_valid`,
    /// `token_key_gone`, `token_secret_rotated`, `token_device_gone`,
    /// `token_refused`, or `token_error` for the others.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) | Self::Lifetime(_) => "token_malformed",
            Self::UnknownSigningKey => "token_unknown_signing_key",
            Self::BadSignature => "token_bad_signature",
            Self::WrongAudience => "token_wrong_audience",
            Self::Expired { .. } => "token_expired",
            Self::NotYetValid { .. } => "token_not_yet_valid",
            Self::KeyGone { .. } => "token_key_gone",
            Self::SecretRotated { .. } => "token_secret_rotated",
            Self::DeviceGone => "token_device_gone",
            Self::Refused(_) => "token_refused",
            _ => "token_error",
        }
    }
}

/// The private half of a signing key (Ed25519), with its PASERK id.
/// `Debug` shows the id only.
#[derive(Clone)]
pub struct SigningKey {
    secret: AsymmetricSecretKey<V4>,
    public: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.public.id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key of a 32-byte seed from the caller's random number generator.
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, TokenError> {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
        let bad = |_| TokenError::Key {
            expected: "an Ed25519 key pair",
        };
        Ok(Self {
            secret: AsymmetricSecretKey::<V4>::from(pair.sk.as_ref()).map_err(bad)?,
            public: VerifyingKey::of(
                AsymmetricPublicKey::<V4>::from(pair.pk.as_ref()).map_err(bad)?,
            ),
        })
    }

    /// Reads a key in PASERK form, `k4.secret.…`.
    pub fn from_paserk(text: &str) -> Result<Self, TokenError> {
        let bad = TokenError::Key {
            expected: "k4.secret.<base64url>",
        };
        let secret = AsymmetricSecretKey::<V4>::try_from(text.trim()).map_err(|_| bad.clone())?;
        let public = AsymmetricPublicKey::<V4>::try_from(&secret).map_err(|_| bad)?;
        Ok(Self {
            secret,
            public: VerifyingKey::of(public),
        })
    }

    /// The key in PASERK form, `k4.secret.…`: **a secret**, for the
    /// operator's key file only.
    pub fn to_paserk(&self) -> String {
        let mut text = String::new();
        let _ = self.secret.fmt(&mut text);
        text
    }

    /// Its public half, for verifiers.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    /// Its PASERK id, `k4.pid.…` (the tokens' `kid`).
    pub fn id(&self) -> &str {
        &self.public.id
    }
}

/// The public half of a signing key, with its PASERK id.
#[derive(Clone)]
pub struct VerifyingKey {
    public: AsymmetricPublicKey<V4>,
    id: String,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("id", &self.id)
            .finish()
    }
}

impl VerifyingKey {
    fn of(public: AsymmetricPublicKey<V4>) -> Self {
        let mut id = String::new();
        let _ = Id::from(&public).fmt(&mut id);
        Self { public, id }
    }

    /// Reads a key in PASERK form, `k4.public.…`.
    pub fn from_paserk(text: &str) -> Result<Self, TokenError> {
        AsymmetricPublicKey::<V4>::try_from(text.trim())
            .map(Self::of)
            .map_err(|_| TokenError::Key {
                expected: "k4.public.<base64url>",
            })
    }

    /// The key in PASERK form, `k4.public.…`.
    pub fn to_paserk(&self) -> String {
        let mut text = String::new();
        let _ = self.public.fmt(&mut text);
        text
    }

    /// Its PASERK id, `k4.pid.…`.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A device token: a bearer credential, so `Debug` shows its prefix only.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceToken(String);

impl fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceToken(\"{TOKEN_PREFIX}…\")")
    }
}

impl DeviceToken {
    /// The token's text, to give to the device.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A token just issued, and its expiry.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: DeviceToken,
    /// When it expires.
    pub expires_at: UnixTime,
}

/// The claims as they are signed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    app: &'a str,
    key: &'a str,
    vd: &'a str,
    iat: &'a str,
    nbf: &'a str,
    exp: &'a str,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Footer<'a> {
    kid: &'a str,
}

fn check_audience(audience: &str) -> Result<(), TokenError> {
    let printable = audience.bytes().all(|b| (0x21..0x7f).contains(&b));
    if audience.is_empty() || audience.len() > MAX_AUDIENCE_LEN || !printable {
        return Err(TokenError::Audience);
    }
    Ok(())
}

/// SHA-256 of the record's verifier.
fn verifier_digest(record: &AccessKey) -> [u8; 32] {
    Sha256::digest(record.verifier().as_str().as_bytes()).into()
}

/// Issues device tokens with one signing key, for one audience.
#[derive(Debug, Clone)]
pub struct Issuer {
    key: SigningKey,
    audience: String,
    lifetime: u64,
    footer: String,
}

impl Issuer {
    /// An issuer of tokens for `audience` (1 to 256 printable ASCII
    /// characters), valid for [`DEFAULT_LIFETIME`].
    pub fn new(key: SigningKey, audience: &str) -> Result<Self, TokenError> {
        check_audience(audience)?;
        let footer =
            serde_json::to_string(&Footer { kid: key.id() }).map_err(|_| TokenError::Sign)?;
        Ok(Self {
            key,
            audience: audience.to_owned(),
            lifetime: DEFAULT_LIFETIME,
            footer,
        })
    }

    /// Tokens valid for `seconds` (1 to [`MAX_LIFETIME`]).
    pub fn with_lifetime(mut self, seconds: u64) -> Result<Self, TokenError> {
        if seconds == 0 || seconds > MAX_LIFETIME {
            return Err(TokenError::Lifetime(seconds));
        }
        self.lifetime = seconds;
        Ok(self)
    }

    /// The lifetime of the tokens, in seconds.
    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }

    /// The signing key's id.
    pub fn key_id(&self) -> &str {
        self.key.id()
    }

    /// A token for `principal`, just authenticated with `record`'s key (the
    /// record whose verifier proved the secret), issued at `now`.
    pub fn issue(
        &self,
        principal: &Principal,
        record: &AccessKey,
        now: UnixTime,
    ) -> Result<IssuedToken, TokenError> {
        if record.key() != principal.key() {
            return Err(TokenError::KeyGone {
                key: *principal.key(),
            });
        }
        let expires_at = now
            .plus_secs(self.lifetime)
            .ok_or(TokenError::Lifetime(self.lifetime))?;
        let (iat, exp) = (now.to_string(), expires_at.to_string());
        let vd = Base64UrlUnpadded::encode_string(&verifier_digest(record));
        let payload = Payload {
            iss: ISSUER,
            aud: &self.audience,
            sub: principal.device_id().as_str(),
            app: principal.application().as_str(),
            key: principal.key().as_str(),
            vd: &vd,
            iat: &iat,
            nbf: &iat,
            exp: &exp,
        };
        let message = serde_json::to_vec(&payload).map_err(|_| TokenError::Sign)?;
        let token = PublicToken::sign(
            &self.key.secret,
            &message,
            Some(self.footer.as_bytes()),
            None,
        )
        .map_err(|_| TokenError::Sign)?;
        Ok(IssuedToken {
            token: DeviceToken(token),
            expires_at,
        })
    }
}

/// Verifies device tokens signed by any of its keys, for one audience.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    keys: Vec<VerifyingKey>,
    audience: String,
}

/// A [`TokenVerifier`] that remembers the tokens it verified (the whole
/// token, compared for equality: no digest to trust), so that a device's
/// next requests with the same token cost a hash-map lookup instead of an
/// Ed25519 verification (about 57 µs here).
/// A remembered token is still refused once expired; what it claims is
/// still checked against the current records by [`Claims::principal`] on
/// every request. At most `capacity` tokens are held; when full, the
/// expired ones go, and if none has expired, all of them.
#[derive(Debug)]
pub struct CachingVerifier {
    verifier: TokenVerifier,
    capacity: usize,
    verified:
        std::sync::RwLock<std::collections::HashMap<Box<str>, Claims, foldhash::fast::RandomState>>,
}

impl CachingVerifier {
    /// Remembers up to `capacity` tokens verified by `verifier` (0: none).
    pub fn new(verifier: TokenVerifier, capacity: usize) -> Self {
        Self {
            verifier,
            capacity,
            verified: std::sync::RwLock::new(std::collections::HashMap::default()),
        }
    }

    /// The verifier it caches for.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// [`TokenVerifier::verify`], or the remembered result of it.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<Claims, TokenError> {
        if self.capacity == 0 || token.len() > MAX_TOKEN_LEN {
            return self.verifier.verify(token, now);
        }
        let remembered = self
            .verified
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(token)
            .cloned();
        if let Some(claims) = remembered {
            if now >= claims.expires_at {
                return Err(TokenError::Expired {
                    at: claims.expires_at,
                });
            }
            return Ok(claims);
        }
        let claims = self.verifier.verify(token, now)?;
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= self.capacity {
            verified.retain(|_, c| now < c.expires_at);
            if verified.len() >= self.capacity {
                verified.clear();
            }
        }
        verified.insert(token.into(), claims.clone());
        Ok(claims)
    }
}

/// What a verified token says. Hand it to [`Claims::principal`] with the
/// current records before trusting it with anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    application: ApplicationId,
    device: DeviceId,
    key: KeyId,
    verifier_digest: [u8; 32],
    issued_at: UnixTime,
    expires_at: UnixTime,
}

impl TokenVerifier {
    /// A verifier of tokens for `audience` signed by any of `keys` (the
    /// current signing key's, and those of keys being retired).
    pub fn new(
        audience: &str,
        keys: impl IntoIterator<Item = VerifyingKey>,
    ) -> Result<Self, TokenError> {
        check_audience(audience)?;
        Ok(Self {
            keys: keys.into_iter().collect(),
            audience: audience.to_owned(),
        })
    }

    /// The ids of the keys it accepts.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(VerifyingKey::id)
    }

    /// The claims of `token` if it is a well-formed token signed by one of
    /// the keys, for this audience, issued at most [`MAX_CLOCK_SKEW`]
    /// seconds after `now` and not expired at `now`.
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(TokenError::Malformed("expected `v4.public.` first"));
        }
        let untrusted = UntrustedToken::<Public, V4>::try_from(token)
            .map_err(|_| TokenError::Malformed("not a PASETO v4.public token"))?;
        let footer: Footer<'_> = serde_json::from_slice(untrusted.untrusted_footer())
            .map_err(|_| TokenError::Malformed("footer is not `{\"kid\": …}`"))?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id.as_bytes().ct_eq(footer.kid.as_bytes()).into())
            .ok_or(TokenError::UnknownSigningKey)?;
        let trusted = PublicToken::verify(&key.public, &untrusted, None, None)
            .map_err(|_| TokenError::BadSignature)?;
        // Signed by us from here on; still checked as strictly.
        let payload: Payload<'_> = serde_json::from_str(trusted.payload())
            .map_err(|_| TokenError::Malformed("claims are not the expected ones"))?;
        if payload.iss != ISSUER {
            return Err(TokenError::Malformed("`iss` is not `structure-access`"));
        }
        if !bool::from(payload.aud.as_bytes().ct_eq(self.audience.as_bytes())) {
            return Err(TokenError::WrongAudience);
        }
        let time = |text: &str| {
            text.parse::<UnixTime>()
                .map_err(|_| TokenError::Malformed("a time claim is not RFC 3339 UTC"))
        };
        let (issued_at, not_before, expires_at) =
            (time(payload.iat)?, time(payload.nbf)?, time(payload.exp)?);
        let lifetime = issued_at.secs_until(expires_at);
        if expires_at <= issued_at || lifetime > MAX_LIFETIME || not_before != issued_at {
            return Err(TokenError::Malformed(
                "times out of order or lifetime too long",
            ));
        }
        if issued_at.as_secs() > now.as_secs().saturating_add(MAX_CLOCK_SKEW) {
            return Err(TokenError::NotYetValid { at: issued_at });
        }
        if now >= expires_at {
            return Err(TokenError::Expired { at: expires_at });
        }
        let mut verifier_digest = [0u8; 32];
        match Base64UrlUnpadded::decode(payload.vd, &mut verifier_digest) {
            Ok(decoded) if decoded.len() == 32 => {}
            _ => return Err(TokenError::Malformed("`vd` is not a SHA-256 digest")),
        }
        let malformed = |_| TokenError::Malformed("`sub`, `app` or `key` invalid");
        Ok(Claims {
            application: payload.app.parse().map_err(|_| malformed(()))?,
            device: payload.sub.parse().map_err(|_| malformed(()))?,
            key: payload.key.parse().map_err(|_| malformed(()))?,
            verifier_digest,
            issued_at,
            expires_at,
        })
    }
}

impl Claims {
    /// The application the token was issued in.
    pub fn application(&self) -> &ApplicationId {
        &self.application
    }

    /// The device it was issued to.
    pub fn device_id(&self) -> &DeviceId {
        &self.device
    }

    /// The access key that authenticated the device.
    pub fn key(&self) -> &KeyId {
        &self.key
    }

    /// When it was issued.
    pub fn issued_at(&self) -> UnixTime {
        self.issued_at
    }

    /// When it expires.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    /// The device's principal by the records in force at `now`: `record`,
    /// the record on file for [`Claims::key`] (if any), and `device`, the
    /// device on file for [`Claims::device_id`] (if any). Refused when
    /// either is gone, when the key's verifier changed since issuance (a
    /// rotated secret; compared in constant time), and whenever
    /// [`Principal::reauthorize`] refuses (inactive, expired, another
    /// application, out of scope).
    pub fn principal<D: Device + ?Sized>(
        &self,
        record: Option<&AccessKey>,
        device: Option<&D>,
        now: UnixTime,
    ) -> Result<Principal, TokenError> {
        let key = self.key;
        let record = record
            .filter(|r| *r.key() == key)
            .ok_or(TokenError::KeyGone { key })?;
        if !bool::from(verifier_digest(record).ct_eq(&self.verifier_digest)) {
            return Err(TokenError::SecretRotated { key });
        }
        let device = device
            .filter(|d| d.id() == self.device.as_str())
            .ok_or(TokenError::DeviceGone)?;
        if *record.application() != self.application {
            return Err(TokenError::Refused(AuthError::WrongApplication { key }));
        }
        Principal::reauthorize(record, device, now).map_err(TokenError::Refused)
    }
}
