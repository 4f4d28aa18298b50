//! MQTT 3.1.1 and 5 packets, encoded and decoded by hand: what the
//! integrations' end-to-end tests and load generators send over plain TCP
//! when a client library would hide what they measure (a CONNACK's code, the
//! moment a broker closes a session, whether a will or a queued message was
//! delivered).
//!
//! Only what the tests use is here: CONNECT (clean or persistent sessions,
//! wills of QoS 0 or 1, retained or not, MQTT 5's will delay and session
//! expiry), SUBSCRIBE, PUBLISH at QoS 0 and 1, PUBACK, and the decoding of the
//! packets a broker sends back.

/// Appends `s` as an MQTT UTF-8 string: its length on two bytes, then its
/// bytes (cut at 65535, the most MQTT allows).
pub fn string(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes().get(..usize::from(len)).unwrap_or_default());
}

/// Appends `n` as an MQTT variable byte integer.
pub fn varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

/// A packet: the fixed header's first byte, the remaining length
/// (variable-length encoded), then `body`.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first];
    varint(&mut packet, body.len());
    packet.extend_from_slice(body);
    packet
}

/// MQTT 5 properties: their length, then each one.
fn properties(out: &mut Vec<u8>, props: &[u8]) {
    varint(out, props.len());
    out.extend_from_slice(props);
}

/// A will: published by the broker when the connection ends without DISCONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Will<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its payload.
    pub message: &'a str,
    /// 0 or 1.
    pub qos: u8,
    /// Whether the broker retains it.
    pub retain: bool,
    /// MQTT 5 only: seconds the broker waits before publishing it.
    pub delay: Option<u32>,
}

impl<'a> Will<'a> {
    /// A QoS 0 will, not retained, without delay.
    pub fn new(topic: &'a str, message: &'a str) -> Self {
        Self {
            topic,
            message,
            qos: 0,
            retain: false,
            delay: None,
        }
    }
}

/// A CONNECT, as [`Connect::encode`] writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The client id.
    pub client_id: &'a str,
    /// Username and password.
    pub credentials: Option<(&'a str, &'a str)>,
    /// Keep-alive, in seconds.
    pub keepalive: u16,
    /// A clean session (3.1.1) or clean start (5).
    pub clean: bool,
    /// The will.
    pub will: Option<Will<'a>>,
    /// MQTT 5 (protocol level 5) when set, with this session expiry interval
    /// in seconds; MQTT 3.1.1 otherwise.
    pub v5_session_expiry: Option<u32>,
}

impl<'a> Connect<'a> {
    /// An MQTT 3.1.1 CONNECT with a clean session, 60 s keep-alive, no will.
    pub fn new(client_id: &'a str, credentials: Option<(&'a str, &'a str)>) -> Self {
        Self {
            client_id,
            credentials,
            keepalive: 60,
            clean: true,
            will: None,
            v5_session_expiry: None,
        }
    }

    /// The protocol level: 4 (3.1.1) or 5.
    pub fn level(&self) -> u8 {
        if self.v5_session_expiry.is_some() {
            5
        } else {
            4
        }
    }

    /// The packet's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let v5 = self.v5_session_expiry.is_some();
        let mut body = Vec::new();
        string(&mut body, "MQTT");
        body.push(self.level());
        let mut flags = if self.clean { 0x02 } else { 0 };
        if self.credentials.is_some() {
            flags |= 0xC0;
        }
        if let Some(will) = &self.will {
            flags |= 0x04 | ((will.qos & 3) << 3) | if will.retain { 0x20 } else { 0 };
        }
        body.push(flags);
        body.extend_from_slice(&self.keepalive.to_be_bytes());
        if let Some(expiry) = self.v5_session_expiry {
            let mut props = vec![0x11];
            props.extend_from_slice(&expiry.to_be_bytes());
            properties(&mut body, &props);
        }
        string(&mut body, self.client_id);
        if let Some(will) = &self.will {
            if v5 {
                let mut props = Vec::new();
                if let Some(delay) = will.delay {
                    props.push(0x18);
                    props.extend_from_slice(&delay.to_be_bytes());
                }
                properties(&mut body, &props);
            }
            string(&mut body, will.topic);
            string(&mut body, will.message);
        }
        if let Some((user, pass)) = self.credentials {
            string(&mut body, user);
            string(&mut body, pass);
        }
        packet(0x10, &body)
    }
}

/// A CONNECT with a clean session, `keepalive` seconds, and optionally a
/// username and password.
pub fn connect(client_id: &str, credentials: Option<(&str, &str)>, keepalive: u16) -> Vec<u8> {
    connect_with_will(client_id, credentials, keepalive, None)
}

/// [`connect`], with a QoS 0 will (`topic`, `message`) if given.
pub fn connect_with_will(
    client_id: &str,
    credentials: Option<(&str, &str)>,
    keepalive: u16,
    will: Option<(&str, &str)>,
) -> Vec<u8> {
    Connect {
        keepalive,
        will: will.map(|(topic, message)| Will::new(topic, message)),
        ..Connect::new(client_id, credentials)
    }
    .encode()
}

/// A SUBSCRIBE of one `filter` at `qos`, with packet id `id`.
pub fn subscribe(id: u16, filter: &str, qos: u8, v5: bool) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v5 {
        properties(&mut body, &[]);
    }
    string(&mut body, filter);
    body.push(qos & 3);
    packet(0x82, &body)
}

/// An UNSUBSCRIBE of one `filter`, with packet id `id`.
pub fn unsubscribe(id: u16, filter: &str, v5: bool) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    if v5 {
        properties(&mut body, &[]);
    }
    string(&mut body, filter);
    packet(0xA2, &body)
}

/// A PUBLISH of `payload` on `topic` at `qos` (the packet id `id` is used
/// for QoS 1 and 2), retained if `retain`.
pub fn publish(topic: &str, payload: &[u8], qos: u8, retain: bool, id: u16, v5: bool) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, topic);
    if qos > 0 {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if v5 {
        properties(&mut body, &[]);
    }
    body.extend_from_slice(payload);
    packet(0x30 | ((qos & 3) << 1) | u8::from(retain), &body)
}

/// A PUBACK of packet id `id` (the same in 3.1.1 and 5: a PUBACK without a
/// reason code is a success).
pub fn puback(id: u16) -> Vec<u8> {
    packet(0x40, &id.to_be_bytes())
}

/// A PUBLISH as a broker delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its QoS.
    pub qos: u8,
    /// Whether it is a retained message.
    pub retain: bool,
    /// Its packet id (QoS 1 and 2).
    pub id: Option<u16>,
}

impl Delivery {
    /// Decodes the body of a PUBLISH whose fixed header's first byte is
    /// `first`; `None` if it is not one.
    pub fn decode(first: u8, body: &[u8], v5: bool) -> Option<Self> {
        if first >> 4 != 3 {
            return None;
        }
        let qos = (first >> 1) & 3;
        let len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
        let topic = String::from_utf8_lossy(body.get(2..2 + len)?).into_owned();
        let mut at = 2 + len;
        let id = if qos > 0 {
            let id = u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]);
            at += 2;
            Some(id)
        } else {
            None
        };
        if v5 {
            let (props, used) = read_varint(body.get(at..)?)?;
            at += used + props;
        }
        Some(Self {
            topic,
            payload: body.get(at..)?.to_vec(),
            qos,
            retain: first & 1 == 1,
            id,
        })
    }
}

/// Reads a variable byte integer: its value and how many bytes it took.
pub fn read_varint(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The return code of a SUBACK's (first) subscription, 3.1.1 or 5.
pub fn suback_code(body: &[u8], v5: bool) -> Option<u8> {
    if v5 {
        let (props, used) = read_varint(body.get(2..)?)?;
        body.get(2 + used + props).copied()
    } else {
        body.get(2).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_encoded_as_mqtt_says() {
        assert_eq!(packet(0xC0, &[]), [0xC0, 0]);
        let long = packet(0x30, &[7; 321]);
        assert_eq!(&long[..3], &[0x30, 0xC1, 0x02]);
        assert_eq!(long.len(), 3 + 321);
        assert_eq!(
            connect("d", Some(("u", "p")), 60),
            [
                0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 1, b'd', 0, 1, b'u', 0,
                1, b'p'
            ]
        );
    }

    #[test]
    fn mqtt_5_connects_carry_their_properties() {
        let will = Will {
            qos: 1,
            retain: true,
            delay: Some(3),
            ..Will::new("t", "m")
        };
        let bytes = Connect {
            clean: false,
            will: Some(will),
            v5_session_expiry: Some(600),
            ..Connect::new("d", None)
        }
        .encode();
        assert_eq!(
            bytes,
            [
                0x10, 31, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x2C, 0, 60, 5, 0x11, 0, 0, 2, 88, 0, 1,
                b'd', 5, 0x18, 0, 0, 0, 3, 0, 1, b't', 0, 1, b'm'
            ]
        );
    }

    #[test]
    fn deliveries_decode_in_both_versions() {
        let v3 = publish("a/b", b"x", 1, true, 7, false);
        let got = Delivery::decode(v3[0], &v3[2..], false).unwrap();
        assert_eq!(
            got,
            Delivery {
                topic: "a/b".into(),
                payload: b"x".to_vec(),
                qos: 1,
                retain: true,
                id: Some(7)
            }
        );
        let v5 = publish("a/b", b"x", 0, false, 0, true);
        let got = Delivery::decode(v5[0], &v5[2..], true).unwrap();
        assert_eq!(
            (got.topic.as_str(), got.payload.as_slice()),
            ("a/b", &b"x"[..])
        );
        assert_eq!(Delivery::decode(0x40, &[0, 1], false), None);
        assert_eq!(suback_code(&[0, 1, 0x80], false), Some(0x80));
        assert_eq!(suback_code(&[0, 1, 0, 1], true), Some(1));
    }
}
