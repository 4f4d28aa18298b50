//! [`DeviceCredentials`]: what a device holds to connect, for SDKs on the device
//! side, and the names of its topics.

use crate::device::{DeviceId, DeviceIdError};
use crate::key::{KeyError, KeyId};
use crate::mqtt::DeviceTopic;
use crate::secret::{Secret, SecretError};

/// A device's credentials: its device ID, and the key and secret it connects
/// with. Each part is validated when the credentials are made; nothing here
/// allocates, and the whole works without `std`.
///
/// It gives the MQTT CONNECT fields (client id = device ID, username = key,
/// password = secret, the password only through [`Secret::expose_secret`]) and
/// the device's topic names under the platform's prefix `structure`, which
/// [`TopicRules::classify`](crate::mqtt::TopicRules::classify) reads back as
/// the device's own state and command topics. `Debug` shows the secret
/// redacted.
///
/// ```
/// use structure_access::DeviceCredentials;
///
/// # let secret = "sts_dGlMoiyrlfxX1rTnyFf3vA7NUtFOY6aF0kDQHBwtnOA2WSIsB";
/// let device = DeviceCredentials::parse("dev-1", "stk_4DmVJcy3ZpW0gNqk8TbX2a", secret)?;
/// assert_eq!(device.client_id(), "dev-1");
/// assert_eq!(device.username(), "stk_4DmVJcy3ZpW0gNqk8TbX2a");
/// let password: &str = device.password().expose_secret();
/// # assert_eq!(password, secret);
/// assert_eq!(device.state_topic().as_str(), "structure/dev-1/state");
/// assert_eq!(device.command_topic().as_str(), "structure/dev-1/command");
/// // A gateway reports for the devices behind it, within its key's scope.
/// let peer = "sensor-7".parse()?;
/// assert_eq!(device.peer_state_topic(&peer).as_str(), "structure/sensor-7/state");
/// assert!(!format!("{device:?}").contains(&secret[4..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    device: DeviceId,
    key: KeyId,
    secret: Secret,
}

/// Why texts are not [`DeviceCredentials`]. The messages never contain the
/// secret; the cause is the [`source`](core::error::Error::source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The device ID is invalid.
    #[error("invalid device ID in the device's credentials")]
    DeviceId(#[source] DeviceIdError),
    /// The access key is invalid.
    #[error("invalid access key in the device's credentials")]
    Key(#[source] KeyError),
    /// The secret is invalid (generated shape with a bad checksum, or an
    /// imported secret of the wrong length or alphabet).
    #[error("invalid access secret in the device's credentials")]
    Secret(#[source] SecretError),
}

impl DeviceCredentials {
    /// Credentials from parts already validated by their types.
    pub fn new(device: DeviceId, key: KeyId, secret: Secret) -> Self {
        Self {
            device,
            key,
            secret,
        }
    }

    /// Validates the three texts a device is provisioned with: a device ID, a
    /// key id and a secret, generated ([`Secret::from_str`](core::str::FromStr),
    /// checksum checked) or imported ([`Secret::parse_any`]). Allocates
    /// nothing, unless an error quotes the device ID or key.
    pub fn parse(device: &str, key: &str, secret: &str) -> Result<Self, CredentialsError> {
        Ok(Self {
            device: device.parse().map_err(CredentialsError::DeviceId)?,
            key: key.parse().map_err(CredentialsError::Key)?,
            secret: Secret::parse_any(secret).map_err(CredentialsError::Secret)?,
        })
    }

    /// The device ID.
    pub fn device_id(&self) -> &DeviceId {
        &self.device
    }

    /// The access key.
    pub fn key(&self) -> &KeyId {
        &self.key
    }

    /// The MQTT client id: the device ID.
    pub fn client_id(&self) -> &str {
        self.device.as_str()
    }

    /// The MQTT username: the access key.
    pub fn username(&self) -> &str {
        self.key.as_str()
    }

    /// The MQTT password: the secret, read with [`Secret::expose_secret`] when
    /// the CONNECT packet is written.
    pub fn password(&self) -> &Secret {
        &self.secret
    }

    /// `structure/{deviceId}/state`: where the device publishes its state.
    pub fn state_topic(&self) -> DeviceTopic {
        DeviceTopic::structure(&self.device, "state")
    }

    /// `structure/{deviceId}/command`: where the device receives commands.
    pub fn command_topic(&self) -> DeviceTopic {
        DeviceTopic::structure(&self.device, "command")
    }

    /// `structure/{peer}/state`: a gateway publishes there for a device behind
    /// it (allowed when the peer is in its key's scope).
    pub fn peer_state_topic(&self, peer: &DeviceId) -> DeviceTopic {
        DeviceTopic::structure(peer, "state")
    }

    /// `structure/{peer}/command`: a gateway subscribes there for a device
    /// behind it (allowed when the peer is in its key's scope).
    pub fn peer_command_topic(&self, peer: &DeviceId) -> DeviceTopic {
        DeviceTopic::structure(peer, "command")
    }
}

impl core::fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("device", &self.device)
            .field("key", &self.key)
            .field("secret", &self.secret)
            .finish()
    }
}
