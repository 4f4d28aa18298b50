//! MQTT 3.1.1 packets, encoded by hand: what the integrations' end-to-end
//! tests and load generators send over plain TCP when a client library would
//! hide what they measure (a CONNACK's code, the moment a broker closes a
//! session).

/// Appends `s` as an MQTT UTF-8 string: its length on two bytes, then its
/// bytes (cut at 65535, the most MQTT allows).
pub fn string(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes().get(..usize::from(len)).unwrap_or_default());
}

/// A packet: the fixed header's first byte, the remaining length
/// (variable-length encoded), then `body`.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    packet
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
    let mut body = Vec::new();
    string(&mut body, "MQTT");
    body.push(4);
    let flags =
        0x02 | if credentials.is_some() { 0xC0 } else { 0 } | if will.is_some() { 0x04 } else { 0 };
    body.push(flags);
    body.extend_from_slice(&keepalive.to_be_bytes());
    string(&mut body, client_id);
    if let Some((topic, message)) = will {
        string(&mut body, topic);
        string(&mut body, message);
    }
    if let Some((user, pass)) = credentials {
        string(&mut body, user);
        string(&mut body, pass);
    }
    packet(0x10, &body)
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
}
