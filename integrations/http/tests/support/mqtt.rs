//! A blocking MQTT 3.1.1 client on a raw socket (the packets of
//! `structure_access_common::wire`): what the RabbitMQ suite and its load
//! generator need to see exactly when a broker answers, refuses or closes.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use structure_access_common::wire;

/// A connected client.
pub struct Mqtt {
    stream: TcpStream,
    buffer: Vec<u8>,
    next_id: u16,
}

/// How a CONNECT ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A CONNACK with this return code.
    Code(u8),
    /// The broker closed the connection without a CONNACK.
    Closed,
}

impl Mqtt {
    /// Connects `client_id` with `user` and `password`; the CONNACK's
    /// refusal otherwise.
    pub fn connect(
        port: u16,
        client_id: &str,
        user: &str,
        password: &str,
    ) -> Result<Self, Refused> {
        Self::connect_with_will(port, client_id, user, password, None)
    }

    /// [`Mqtt::connect`] with a QoS 0 will.
    pub fn connect_with_will(
        port: u16,
        client_id: &str,
        user: &str,
        password: &str,
        will: Option<(&str, &str)>,
    ) -> Result<Self, Refused> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|_| Refused::Closed)?;
        stream.set_nodelay(true).ok();
        let mut client = Self {
            stream,
            buffer: Vec::new(),
            next_id: 1,
        };
        let connect = wire::connect_with_will(client_id, Some((user, password)), 60, will);
        client
            .stream
            .write_all(&connect)
            .map_err(|_| Refused::Closed)?;
        match client.read(Duration::from_secs(20)) {
            Some((0x20, body)) => match body.get(1) {
                Some(0) => Ok(client),
                Some(&code) => Err(Refused::Code(code)),
                None => Err(Refused::Closed),
            },
            _ => Err(Refused::Closed),
        }
    }

    /// The next packet (first byte, body) within `wait`; `None` when the
    /// connection is closed or nothing came.
    pub fn read(&mut self, wait: Duration) -> Option<(u8, Vec<u8>)> {
        let until = Instant::now() + wait;
        loop {
            if self.buffer.len() >= 2
                && let Some((len, used)) = wire::read_varint(&self.buffer[1..])
                && self.buffer.len() >= 1 + used + len
            {
                let first = self.buffer[0];
                let body = self.buffer[1 + used..1 + used + len].to_vec();
                self.buffer.drain(..1 + used + len);
                return Some((first, body));
            }
            let left = until.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    fn id(&mut self) -> u16 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// Subscribes to `filter` at QoS 0: the SUBACK's return code, or `None`
    /// when the broker closed the connection instead (RabbitMQ 3.10 closes
    /// a connection whose subscription it refuses).
    pub fn subscribe(&mut self, filter: &str) -> Option<u8> {
        let id = self.id();
        self.stream
            .write_all(&wire::subscribe(id, filter, 0, false))
            .ok()?;
        loop {
            let (first, body) = self.read(Duration::from_secs(20))?;
            if first >> 4 == 9 {
                return wire::suback_code(&body, false);
            }
        }
    }

    /// Publishes `payload` on `topic` at QoS 0.
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> bool {
        self.stream
            .write_all(&wire::publish(topic, payload, 0, false, 0, false))
            .is_ok()
    }

    /// The messages delivered within `wait` (topic, payload).
    pub fn messages(&mut self, wait: Duration) -> Vec<(String, String)> {
        let until = Instant::now() + wait;
        let mut out = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.read(left) {
                Some((first, body)) => {
                    if let Some(d) = wire::Delivery::decode(first, &body, false) {
                        out.push((d.topic, String::from_utf8_lossy(&d.payload).into_owned()));
                    }
                }
                None => break,
            }
        }
        out
    }

    /// Whether the connection is still open: a PINGREQ answered.
    pub fn alive(&mut self) -> bool {
        if self.stream.write_all(&[0xC0, 0]).is_err() {
            return false;
        }
        let until = Instant::now() + Duration::from_secs(5);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.read(left) {
                Some((0xD0, _)) => return true,
                Some(_) => continue,
                None => return false,
            }
        }
        false
    }

    /// How long until the broker closed the connection, within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            self.stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .ok()?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Some(start.elapsed()),
            }
        }
        None
    }

    /// Sends DISCONNECT and closes.
    pub fn disconnect(mut self) {
        let _ = self.stream.write_all(&[0xE0, 0]);
    }

    /// Closes the socket without a DISCONNECT (the will is sent).
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}
