//! PPTP control messages (RFC 2637 §1.4 header, §2.1–§2.16 messages) and TCP stream framing.
//!
//! Every message starts with the 12-byte header of RFC 2637 §1.4:
//! `Length(2) PPTP-Message-Type(2) Magic-Cookie(4) Control-Message-Type(2) Reserved0(2)`.
//! [`ControlMessage::parse`] takes exactly one message (as cut by [`Deframer`] or
//! [`message_length`]) and [`ControlMessage::emit`] writes one.
//!
//! Choices the RFC leaves open:
//! - A message longer than its type's fixed length is accepted and the extra bytes ignored
//!   (pptp-linux does the same; it only refuses messages that are too short).
//! - Reserved fields are ignored on parse and written as zero.
//! - Fixed-length text fields (host name, vendor, phone number, subaddress, call statistics) are
//!   NUL padded on emit; on parse the text ends at the first NUL and anything after it is ignored
//!   (some stacks leave garbage there).
//! - The Phone Number Length / Dialed / Dialing Number Length fields are emitted as the length of
//!   the text carried, and ignored on parse (the NUL-terminated field is authoritative).

use std::fmt;

/// TCP port of the control connection (RFC 2637 §1.3).
pub const PPTP_PORT: u16 = 1723;
/// Magic Cookie (RFC 2637 §1.4).
pub const MAGIC_COOKIE: u32 = 0x1A2B_3C4D;
/// Protocol version 1.0 (RFC 2637 §2.1).
pub const PROTOCOL_VERSION: u16 = 0x0100;
/// Length of the common control message header.
pub const HEADER_LEN: usize = 12;
/// Largest control message the framer accepts. The largest defined message (ICRQ) is 220 bytes;
/// pptpd refuses anything over its own buffer size, and a peer sending more has lost sync.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// PPTP Message Type (RFC 2637 §1.4): control messages.
pub const PPTP_MESSAGE_CONTROL: u16 = 1;
/// PPTP Message Type (RFC 2637 §1.4): management messages (never defined by the RFC).
pub const PPTP_MESSAGE_MANAGEMENT: u16 = 2;

/// Control Message Type values (RFC 2637 §1.4).
pub mod message_type {
    pub const SCCRQ: u16 = 1;
    pub const SCCRP: u16 = 2;
    pub const STOP_CCRQ: u16 = 3;
    pub const STOP_CCRP: u16 = 4;
    pub const ECHO_REQUEST: u16 = 5;
    pub const ECHO_REPLY: u16 = 6;
    pub const OCRQ: u16 = 7;
    pub const OCRP: u16 = 8;
    pub const ICRQ: u16 = 9;
    pub const ICRP: u16 = 10;
    pub const ICCN: u16 = 11;
    pub const CCRQ: u16 = 12;
    pub const CDN: u16 = 13;
    pub const WEN: u16 = 14;
    pub const SLI: u16 = 15;
}

/// Total length (header included) of each defined control message (RFC 2637 §2).
pub fn defined_length(ctrl_type: u16) -> Option<usize> {
    use message_type::*;
    Some(match ctrl_type {
        SCCRQ | SCCRP => 156,
        STOP_CCRQ | STOP_CCRP => 16,
        ECHO_REQUEST => 16,
        ECHO_REPLY => 20,
        OCRQ => 168,
        OCRP => 32,
        ICRQ => 220,
        ICRP => 24,
        ICCN => 28,
        CCRQ => 16,
        CDN => 148,
        WEN => 40,
        SLI => 24,
        _ => return None,
    })
}

/// Errors from parsing or framing control messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("control message shorter than the {HEADER_LEN}-byte header ({0} bytes)")]
    Truncated(usize),
    #[error("length field {declared} does not match the {actual} bytes given")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("length field {0} outside {HEADER_LEN}..={MAX_MESSAGE_LEN}: stream out of sync")]
    BadLength(u16),
    #[error("bad magic cookie {0:#010x}: stream out of sync")]
    BadMagic(u32),
    #[error("PPTP message type {0} is not a control message")]
    NotControl(u16),
    #[error("control message type {message_type} needs {expected} bytes, got {actual}")]
    TooShort {
        message_type: u16,
        expected: usize,
        actual: usize,
    },
}

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value this implementation does not know.
            Unknown(u8),
        }
        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $($val => $name::$var,)*
                    other => $name::Unknown(other),
                }
            }
        }
        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $($name::$var => $val,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

code_enum!(
    /// General Error Code (RFC 2637 §2.16), carried with a "general error" result.
    GeneralError {
        None = 0,
        NotConnected = 1,
        BadFormat = 2,
        BadValue = 3,
        NoResource = 4,
        BadCallId = 5,
        PacError = 6,
    }
);

code_enum!(
    /// Start-Control-Connection-Reply Result Code (RFC 2637 §2.2).
    StartResult {
        Ok = 1,
        GeneralError = 2,
        AlreadyExists = 3,
        NotAuthorized = 4,
        VersionNotSupported = 5,
    }
);

code_enum!(
    /// Stop-Control-Connection-Request Reason (RFC 2637 §2.3).
    StopReason {
        None = 1,
        StopProtocol = 2,
        LocalShutdown = 3,
    }
);

code_enum!(
    /// Stop-Control-Connection-Reply Result Code (RFC 2637 §2.4).
    StopResult {
        Ok = 1,
        GeneralError = 2,
    }
);

code_enum!(
    /// Echo-Reply Result Code (RFC 2637 §2.6).
    EchoResult {
        Ok = 1,
        GeneralError = 2,
    }
);

code_enum!(
    /// Outgoing-Call-Reply Result Code (RFC 2637 §2.8).
    OutgoingCallResult {
        Connected = 1,
        GeneralError = 2,
        NoCarrier = 3,
        Busy = 4,
        NoDialTone = 5,
        TimeOut = 6,
        DoNotAccept = 7,
    }
);

code_enum!(
    /// Incoming-Call-Reply Result Code (RFC 2637 §2.10).
    IncomingCallResult {
        Connect = 1,
        GeneralError = 2,
        DoNotAccept = 3,
    }
);

code_enum!(
    /// Call-Disconnect-Notify Result Code (RFC 2637 §2.13).
    DisconnectResult {
        LostCarrier = 1,
        GeneralError = 2,
        AdminShutdown = 3,
        Request = 4,
    }
);

/// A fixed-length, NUL-padded text field (host name, vendor, phone number, ...).
///
/// Holds the bytes before the first NUL; not necessarily UTF-8.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct FixedStr(Vec<u8>);

impl FixedStr {
    pub fn new(bytes: &[u8]) -> Self {
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        FixedStr(bytes[..end].to_vec())
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl From<&str> for FixedStr {
    fn from(s: &str) -> Self {
        FixedStr::new(s.as_bytes())
    }
}

impl fmt::Debug for FixedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl fmt::Display for FixedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

/// Length of the host name and vendor fields (RFC 2637 §2.1).
pub const HOSTNAME_LEN: usize = 64;
/// Length of the phone number and subaddress fields (RFC 2637 §2.7).
pub const PHONE_LEN: usize = 64;
/// Length of the CDN call statistics field (RFC 2637 §2.13).
pub const CALL_STATS_LEN: usize = 128;

/// Framing Capabilities / Framing Type bits (RFC 2637 §2.1): asynchronous.
pub const FRAMING_ASYNC: u32 = 1;
/// Framing Capabilities / Framing Type bits (RFC 2637 §2.1): synchronous.
pub const FRAMING_SYNC: u32 = 2;
/// Bearer Capabilities / Bearer Type bits (RFC 2637 §2.1): analog.
pub const BEARER_ANALOG: u32 = 1;
/// Bearer Capabilities / Bearer Type bits (RFC 2637 §2.1): digital.
pub const BEARER_DIGITAL: u32 = 2;

/// Start-Control-Connection-Request (RFC 2637 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sccrq {
    pub protocol_version: u16,
    pub framing_capabilities: u32,
    pub bearer_capabilities: u32,
    pub maximum_channels: u16,
    pub firmware_revision: u16,
    pub host_name: FixedStr,
    pub vendor_string: FixedStr,
}

/// Start-Control-Connection-Reply (RFC 2637 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sccrp {
    pub protocol_version: u16,
    pub result: StartResult,
    pub error: GeneralError,
    pub framing_capabilities: u32,
    pub bearer_capabilities: u32,
    pub maximum_channels: u16,
    pub firmware_revision: u16,
    pub host_name: FixedStr,
    pub vendor_string: FixedStr,
}

/// Outgoing-Call-Request (RFC 2637 §2.7), PNS → PAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ocrq {
    /// The call id the PNS (sender) assigned; the PAC puts it in the GRE key of packets it sends.
    pub call_id: u16,
    pub call_serial: u16,
    pub minimum_bps: u32,
    pub maximum_bps: u32,
    pub bearer_type: u32,
    pub framing_type: u32,
    pub recv_window: u16,
    pub processing_delay: u16,
    pub phone_number: FixedStr,
    pub subaddress: FixedStr,
}

/// Outgoing-Call-Reply (RFC 2637 §2.8), PAC → PNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ocrp {
    /// The call id the PAC (sender) assigned.
    pub call_id: u16,
    /// The PNS's call id from the OCRQ.
    pub peer_call_id: u16,
    pub result: OutgoingCallResult,
    pub error: GeneralError,
    pub cause_code: u16,
    pub connect_speed: u32,
    pub recv_window: u16,
    pub processing_delay: u16,
    pub physical_channel_id: u32,
}

/// Incoming-Call-Request (RFC 2637 §2.9), PAC → PNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icrq {
    pub call_id: u16,
    pub call_serial: u16,
    pub bearer_type: u32,
    pub physical_channel_id: u32,
    pub dialed_number: FixedStr,
    pub dialing_number: FixedStr,
    pub subaddress: FixedStr,
}

/// Incoming-Call-Reply (RFC 2637 §2.10), PNS → PAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icrp {
    pub call_id: u16,
    pub peer_call_id: u16,
    pub result: IncomingCallResult,
    pub error: GeneralError,
    pub recv_window: u16,
    pub processing_delay: u16,
}

/// Incoming-Call-Connected (RFC 2637 §2.11), PAC → PNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iccn {
    pub peer_call_id: u16,
    pub connect_speed: u32,
    pub recv_window: u16,
    pub processing_delay: u16,
    pub framing_type: u32,
}

/// Call-Disconnect-Notify (RFC 2637 §2.13), PAC → PNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cdn {
    /// The call id assigned by the PAC (sender).
    pub call_id: u16,
    pub result: DisconnectResult,
    pub error: GeneralError,
    pub cause_code: u16,
    pub call_statistics: FixedStr,
}

/// WAN-Error-Notify (RFC 2637 §2.14), PAC → PNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wen {
    /// The call id assigned by the PNS (recipient).
    pub peer_call_id: u16,
    pub crc_errors: u32,
    pub framing_errors: u32,
    pub hardware_overruns: u32,
    pub buffer_overruns: u32,
    pub timeout_errors: u32,
    pub alignment_errors: u32,
}

/// Set-Link-Info (RFC 2637 §2.15), PNS → PAC (Windows sends it too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sli {
    /// The call id assigned by the PAC (recipient).
    pub peer_call_id: u16,
    pub send_accm: u32,
    pub recv_accm: u32,
}

/// One PPTP control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// Start-Control-Connection-Request (§2.1).
    Sccrq(Sccrq),
    /// Start-Control-Connection-Reply (§2.2).
    Sccrp(Sccrp),
    /// Stop-Control-Connection-Request (§2.3).
    StopCcrq { reason: StopReason },
    /// Stop-Control-Connection-Reply (§2.4).
    StopCcrp {
        result: StopResult,
        error: GeneralError,
    },
    /// Echo-Request (§2.5).
    EchoRequest { identifier: u32 },
    /// Echo-Reply (§2.6).
    EchoReply {
        identifier: u32,
        result: EchoResult,
        error: GeneralError,
    },
    /// Outgoing-Call-Request (§2.7).
    Ocrq(Ocrq),
    /// Outgoing-Call-Reply (§2.8).
    Ocrp(Ocrp),
    /// Incoming-Call-Request (§2.9).
    Icrq(Icrq),
    /// Incoming-Call-Reply (§2.10).
    Icrp(Icrp),
    /// Incoming-Call-Connected (§2.11).
    Iccn(Iccn),
    /// Call-Clear-Request (§2.12): `call_id` is the one the PNS (sender) assigned.
    Ccrq { call_id: u16 },
    /// Call-Disconnect-Notify (§2.13).
    Cdn(Cdn),
    /// WAN-Error-Notify (§2.14).
    Wen(Wen),
    /// Set-Link-Info (§2.15).
    Sli(Sli),
    /// A control message type this implementation does not know: the bytes after the header.
    Unknown { message_type: u16, body: Vec<u8> },
}

/// Bounds-checked big-endian reader over one message body.
struct Rd<'a> {
    b: &'a [u8],
    pos: usize,
    message_type: u16,
}

impl<'a> Rd<'a> {
    fn short(&self, need: usize) -> ParseError {
        ParseError::TooShort {
            message_type: self.message_type,
            expected: HEADER_LEN + self.pos + need,
            actual: HEADER_LEN + self.b.len(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.short(n))?;
        let s = self.b.get(self.pos..end).ok_or_else(|| self.short(n))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ParseError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, ParseError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn text(&mut self, n: usize) -> Result<FixedStr, ParseError> {
        Ok(FixedStr::new(self.take(n)?))
    }
}

fn put_text(out: &mut Vec<u8>, s: &FixedStr, n: usize) {
    let b = s.as_bytes();
    let used = b.len().min(n);
    out.extend_from_slice(&b[..used]);
    out.resize(out.len() + (n - used), 0);
}

fn text_len(s: &FixedStr, n: usize) -> u16 {
    // n <= 64, so this never saturates.
    u16::try_from(s.len().min(n)).unwrap_or(u16::MAX)
}

/// Returns the length of the first message in `buf` once its length field is readable:
/// `Ok(None)` if fewer than 2 bytes are buffered, `Err(BadLength)` if the length is outside
/// `12..=1024` (the stream is out of sync and the connection must be closed, RFC 2637 §1.4).
pub fn message_length(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(b) = buf.get(0..2) else {
        return Ok(None);
    };
    let len = u16::from_be_bytes([b[0], b[1]]);
    if usize::from(len) < HEADER_LEN || usize::from(len) > MAX_MESSAGE_LEN {
        return Err(ParseError::BadLength(len));
    }
    Ok(Some(usize::from(len)))
}

/// Splits a TCP byte stream into control messages.
///
/// Bytes are buffered until a whole message (per its length field) is present. After a
/// framing error the deframer stays failed: the stream cannot be resynchronised.
#[derive(Debug, Default, Clone)]
pub struct Deframer {
    buf: Vec<u8>,
    failed: bool,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(bytes);
        }
    }
    /// Bytes buffered but not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    /// The next whole message (header included), `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, ParseError> {
        if self.failed {
            return Ok(None);
        }
        match message_length(&self.buf) {
            Ok(Some(len)) if self.buf.len() >= len => {
                let rest = self.buf.split_off(len);
                Ok(Some(std::mem::replace(&mut self.buf, rest)))
            }
            Ok(_) => Ok(None),
            Err(e) => {
                self.failed = true;
                self.buf.clear();
                Err(e)
            }
        }
    }
}

impl ControlMessage {
    /// The Control Message Type of this message (RFC 2637 §1.4).
    pub fn message_type(&self) -> u16 {
        use message_type::*;
        match self {
            ControlMessage::Sccrq(_) => SCCRQ,
            ControlMessage::Sccrp(_) => SCCRP,
            ControlMessage::StopCcrq { .. } => STOP_CCRQ,
            ControlMessage::StopCcrp { .. } => STOP_CCRP,
            ControlMessage::EchoRequest { .. } => ECHO_REQUEST,
            ControlMessage::EchoReply { .. } => ECHO_REPLY,
            ControlMessage::Ocrq(_) => OCRQ,
            ControlMessage::Ocrp(_) => OCRP,
            ControlMessage::Icrq(_) => ICRQ,
            ControlMessage::Icrp(_) => ICRP,
            ControlMessage::Iccn(_) => ICCN,
            ControlMessage::Ccrq { .. } => CCRQ,
            ControlMessage::Cdn(_) => CDN,
            ControlMessage::Wen(_) => WEN,
            ControlMessage::Sli(_) => SLI,
            ControlMessage::Unknown { message_type, .. } => *message_type,
        }
    }

    /// Parses exactly one message: `buf.len()` must equal the length field.
    pub fn parse(buf: &[u8]) -> Result<ControlMessage, ParseError> {
        if buf.len() < HEADER_LEN {
            return Err(ParseError::Truncated(buf.len()));
        }
        let len_field = u16::from_be_bytes([buf[0], buf[1]]);
        let declared = usize::from(len_field);
        // The same bound as the stream framer: no message we could emit is longer, so
        // parse(emit(m)) == m holds for everything parse accepts (found by fuzzing).
        if declared > MAX_MESSAGE_LEN {
            return Err(ParseError::BadLength(len_field));
        }
        if declared != buf.len() {
            return Err(ParseError::LengthMismatch {
                declared,
                actual: buf.len(),
            });
        }
        let pptp_type = u16::from_be_bytes([buf[2], buf[3]]);
        let magic = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if magic != MAGIC_COOKIE {
            return Err(ParseError::BadMagic(magic));
        }
        if pptp_type != PPTP_MESSAGE_CONTROL {
            return Err(ParseError::NotControl(pptp_type));
        }
        let ctrl_type = u16::from_be_bytes([buf[8], buf[9]]);
        let body = &buf[HEADER_LEN..];
        if let Some(need) = defined_length(ctrl_type) {
            if buf.len() < need {
                return Err(ParseError::TooShort {
                    message_type: ctrl_type,
                    expected: need,
                    actual: buf.len(),
                });
            }
        }
        let mut r = Rd {
            b: body,
            pos: 0,
            message_type: ctrl_type,
        };
        use message_type::*;
        let msg = match ctrl_type {
            SCCRQ => {
                let protocol_version = r.u16()?;
                let _reserved1 = r.u16()?;
                ControlMessage::Sccrq(Sccrq {
                    protocol_version,
                    framing_capabilities: r.u32()?,
                    bearer_capabilities: r.u32()?,
                    maximum_channels: r.u16()?,
                    firmware_revision: r.u16()?,
                    host_name: r.text(HOSTNAME_LEN)?,
                    vendor_string: r.text(HOSTNAME_LEN)?,
                })
            }
            SCCRP => ControlMessage::Sccrp(Sccrp {
                protocol_version: r.u16()?,
                result: r.u8()?.into(),
                error: r.u8()?.into(),
                framing_capabilities: r.u32()?,
                bearer_capabilities: r.u32()?,
                maximum_channels: r.u16()?,
                firmware_revision: r.u16()?,
                host_name: r.text(HOSTNAME_LEN)?,
                vendor_string: r.text(HOSTNAME_LEN)?,
            }),
            STOP_CCRQ => ControlMessage::StopCcrq {
                reason: r.u8()?.into(),
            },
            STOP_CCRP => ControlMessage::StopCcrp {
                result: r.u8()?.into(),
                error: r.u8()?.into(),
            },
            ECHO_REQUEST => ControlMessage::EchoRequest {
                identifier: r.u32()?,
            },
            ECHO_REPLY => ControlMessage::EchoReply {
                identifier: r.u32()?,
                result: r.u8()?.into(),
                error: r.u8()?.into(),
            },
            OCRQ => {
                let call_id = r.u16()?;
                let call_serial = r.u16()?;
                let minimum_bps = r.u32()?;
                let maximum_bps = r.u32()?;
                let bearer_type = r.u32()?;
                let framing_type = r.u32()?;
                let recv_window = r.u16()?;
                let processing_delay = r.u16()?;
                let _phone_number_len = r.u16()?;
                let _reserved1 = r.u16()?;
                ControlMessage::Ocrq(Ocrq {
                    call_id,
                    call_serial,
                    minimum_bps,
                    maximum_bps,
                    bearer_type,
                    framing_type,
                    recv_window,
                    processing_delay,
                    phone_number: r.text(PHONE_LEN)?,
                    subaddress: r.text(PHONE_LEN)?,
                })
            }
            OCRP => ControlMessage::Ocrp(Ocrp {
                call_id: r.u16()?,
                peer_call_id: r.u16()?,
                result: r.u8()?.into(),
                error: r.u8()?.into(),
                cause_code: r.u16()?,
                connect_speed: r.u32()?,
                recv_window: r.u16()?,
                processing_delay: r.u16()?,
                physical_channel_id: r.u32()?,
            }),
            ICRQ => {
                let call_id = r.u16()?;
                let call_serial = r.u16()?;
                let bearer_type = r.u32()?;
                let physical_channel_id = r.u32()?;
                let _dialed_len = r.u16()?;
                let _dialing_len = r.u16()?;
                ControlMessage::Icrq(Icrq {
                    call_id,
                    call_serial,
                    bearer_type,
                    physical_channel_id,
                    dialed_number: r.text(PHONE_LEN)?,
                    dialing_number: r.text(PHONE_LEN)?,
                    subaddress: r.text(PHONE_LEN)?,
                })
            }
            ICRP => ControlMessage::Icrp(Icrp {
                call_id: r.u16()?,
                peer_call_id: r.u16()?,
                result: r.u8()?.into(),
                error: r.u8()?.into(),
                recv_window: r.u16()?,
                processing_delay: r.u16()?,
            }),
            ICCN => {
                let peer_call_id = r.u16()?;
                let _reserved1 = r.u16()?;
                ControlMessage::Iccn(Iccn {
                    peer_call_id,
                    connect_speed: r.u32()?,
                    recv_window: r.u16()?,
                    processing_delay: r.u16()?,
                    framing_type: r.u32()?,
                })
            }
            CCRQ => ControlMessage::Ccrq { call_id: r.u16()? },
            CDN => {
                let call_id = r.u16()?;
                let result = r.u8()?.into();
                let error = r.u8()?.into();
                let cause_code = r.u16()?;
                let _reserved1 = r.u16()?;
                ControlMessage::Cdn(Cdn {
                    call_id,
                    result,
                    error,
                    cause_code,
                    call_statistics: r.text(CALL_STATS_LEN)?,
                })
            }
            WEN => {
                let peer_call_id = r.u16()?;
                let _reserved1 = r.u16()?;
                ControlMessage::Wen(Wen {
                    peer_call_id,
                    crc_errors: r.u32()?,
                    framing_errors: r.u32()?,
                    hardware_overruns: r.u32()?,
                    buffer_overruns: r.u32()?,
                    timeout_errors: r.u32()?,
                    alignment_errors: r.u32()?,
                })
            }
            SLI => {
                let peer_call_id = r.u16()?;
                let _reserved1 = r.u16()?;
                ControlMessage::Sli(Sli {
                    peer_call_id,
                    send_accm: r.u32()?,
                    recv_accm: r.u32()?,
                })
            }
            other => ControlMessage::Unknown {
                message_type: other,
                body: body.to_vec(),
            },
        };
        Ok(msg)
    }

    /// Appends the wire form of this message to `out`.
    pub fn emit_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0, 0]); // length, patched below
        out.extend_from_slice(&PPTP_MESSAGE_CONTROL.to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.message_type().to_be_bytes());
        out.extend_from_slice(&[0, 0]); // Reserved0
        let p16 = |o: &mut Vec<u8>, v: u16| o.extend_from_slice(&v.to_be_bytes());
        let p32 = |o: &mut Vec<u8>, v: u32| o.extend_from_slice(&v.to_be_bytes());
        match self {
            ControlMessage::Sccrq(m) => {
                p16(out, m.protocol_version);
                p16(out, 0);
                p32(out, m.framing_capabilities);
                p32(out, m.bearer_capabilities);
                p16(out, m.maximum_channels);
                p16(out, m.firmware_revision);
                put_text(out, &m.host_name, HOSTNAME_LEN);
                put_text(out, &m.vendor_string, HOSTNAME_LEN);
            }
            ControlMessage::Sccrp(m) => {
                p16(out, m.protocol_version);
                out.push(m.result.into());
                out.push(m.error.into());
                p32(out, m.framing_capabilities);
                p32(out, m.bearer_capabilities);
                p16(out, m.maximum_channels);
                p16(out, m.firmware_revision);
                put_text(out, &m.host_name, HOSTNAME_LEN);
                put_text(out, &m.vendor_string, HOSTNAME_LEN);
            }
            ControlMessage::StopCcrq { reason } => {
                out.extend_from_slice(&[(*reason).into(), 0, 0, 0]);
            }
            ControlMessage::StopCcrp { result, error } => {
                out.extend_from_slice(&[(*result).into(), (*error).into(), 0, 0]);
            }
            ControlMessage::EchoRequest { identifier } => p32(out, *identifier),
            ControlMessage::EchoReply {
                identifier,
                result,
                error,
            } => {
                p32(out, *identifier);
                out.extend_from_slice(&[(*result).into(), (*error).into(), 0, 0]);
            }
            ControlMessage::Ocrq(m) => {
                p16(out, m.call_id);
                p16(out, m.call_serial);
                p32(out, m.minimum_bps);
                p32(out, m.maximum_bps);
                p32(out, m.bearer_type);
                p32(out, m.framing_type);
                p16(out, m.recv_window);
                p16(out, m.processing_delay);
                p16(out, text_len(&m.phone_number, PHONE_LEN));
                p16(out, 0);
                put_text(out, &m.phone_number, PHONE_LEN);
                put_text(out, &m.subaddress, PHONE_LEN);
            }
            ControlMessage::Ocrp(m) => {
                p16(out, m.call_id);
                p16(out, m.peer_call_id);
                out.push(m.result.into());
                out.push(m.error.into());
                p16(out, m.cause_code);
                p32(out, m.connect_speed);
                p16(out, m.recv_window);
                p16(out, m.processing_delay);
                p32(out, m.physical_channel_id);
            }
            ControlMessage::Icrq(m) => {
                p16(out, m.call_id);
                p16(out, m.call_serial);
                p32(out, m.bearer_type);
                p32(out, m.physical_channel_id);
                p16(out, text_len(&m.dialed_number, PHONE_LEN));
                p16(out, text_len(&m.dialing_number, PHONE_LEN));
                put_text(out, &m.dialed_number, PHONE_LEN);
                put_text(out, &m.dialing_number, PHONE_LEN);
                put_text(out, &m.subaddress, PHONE_LEN);
            }
            ControlMessage::Icrp(m) => {
                p16(out, m.call_id);
                p16(out, m.peer_call_id);
                out.push(m.result.into());
                out.push(m.error.into());
                p16(out, m.recv_window);
                p16(out, m.processing_delay);
                p16(out, 0);
            }
            ControlMessage::Iccn(m) => {
                p16(out, m.peer_call_id);
                p16(out, 0);
                p32(out, m.connect_speed);
                p16(out, m.recv_window);
                p16(out, m.processing_delay);
                p32(out, m.framing_type);
            }
            ControlMessage::Ccrq { call_id } => {
                p16(out, *call_id);
                p16(out, 0);
            }
            ControlMessage::Cdn(m) => {
                p16(out, m.call_id);
                out.push(m.result.into());
                out.push(m.error.into());
                p16(out, m.cause_code);
                p16(out, 0);
                put_text(out, &m.call_statistics, CALL_STATS_LEN);
            }
            ControlMessage::Wen(m) => {
                p16(out, m.peer_call_id);
                p16(out, 0);
                p32(out, m.crc_errors);
                p32(out, m.framing_errors);
                p32(out, m.hardware_overruns);
                p32(out, m.buffer_overruns);
                p32(out, m.timeout_errors);
                p32(out, m.alignment_errors);
            }
            ControlMessage::Sli(m) => {
                p16(out, m.peer_call_id);
                p16(out, 0);
                p32(out, m.send_accm);
                p32(out, m.recv_accm);
            }
            ControlMessage::Unknown { body, .. } => {
                // Keep the length field representable; an over-long body is cut (emitting
                // an unknown message is for tests and relays only).
                let room = MAX_MESSAGE_LEN - HEADER_LEN;
                out.extend_from_slice(&body[..body.len().min(room)]);
            }
        }
        let len = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
        out[start..start + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// The wire form of this message.
    pub fn emit(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(168);
        self.emit_into(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_messages() -> Vec<ControlMessage> {
        vec![
            ControlMessage::Sccrq(Sccrq {
                protocol_version: PROTOCOL_VERSION,
                framing_capabilities: 3,
                bearer_capabilities: 3,
                maximum_channels: 0,
                firmware_revision: 1,
                host_name: "host".into(),
                vendor_string: "virtgate".into(),
            }),
            ControlMessage::Sccrp(Sccrp {
                protocol_version: PROTOCOL_VERSION,
                result: StartResult::VersionNotSupported,
                error: GeneralError::None,
                framing_capabilities: 1,
                bearer_capabilities: 2,
                maximum_channels: 7,
                firmware_revision: 0x0102,
                host_name: "h".into(),
                vendor_string: "v".into(),
            }),
            ControlMessage::StopCcrq {
                reason: StopReason::LocalShutdown,
            },
            ControlMessage::StopCcrp {
                result: StopResult::GeneralError,
                error: GeneralError::BadFormat,
            },
            ControlMessage::EchoRequest {
                identifier: 0xdead_beef,
            },
            ControlMessage::EchoReply {
                identifier: 7,
                result: EchoResult::Ok,
                error: GeneralError::None,
            },
            ControlMessage::Ocrq(Ocrq {
                call_id: 0x1234,
                call_serial: 9,
                minimum_bps: 2400,
                maximum_bps: 10_000_000,
                bearer_type: 3,
                framing_type: 3,
                recv_window: 64,
                processing_delay: 0,
                phone_number: "5551234".into(),
                subaddress: "".into(),
            }),
            ControlMessage::Ocrp(Ocrp {
                call_id: 1,
                peer_call_id: 2,
                result: OutgoingCallResult::Busy,
                error: GeneralError::Unknown(99),
                cause_code: 0x55aa,
                connect_speed: 1,
                recv_window: 2,
                processing_delay: 3,
                physical_channel_id: 4,
            }),
            ControlMessage::Icrq(Icrq {
                call_id: 1,
                call_serial: 2,
                bearer_type: 1,
                physical_channel_id: 77,
                dialed_number: "123".into(),
                dialing_number: "4567".into(),
                subaddress: "x".into(),
            }),
            ControlMessage::Icrp(Icrp {
                call_id: 1,
                peer_call_id: 2,
                result: IncomingCallResult::DoNotAccept,
                error: GeneralError::None,
                recv_window: 16,
                processing_delay: 1,
            }),
            ControlMessage::Iccn(Iccn {
                peer_call_id: 5,
                connect_speed: 64000,
                recv_window: 8,
                processing_delay: 0,
                framing_type: 2,
            }),
            ControlMessage::Ccrq { call_id: 0xb138 },
            ControlMessage::Cdn(Cdn {
                call_id: 3,
                result: DisconnectResult::AdminShutdown,
                error: GeneralError::None,
                cause_code: 0,
                call_statistics: "stats".into(),
            }),
            ControlMessage::Wen(Wen {
                peer_call_id: 1,
                crc_errors: 2,
                framing_errors: 3,
                hardware_overruns: 4,
                buffer_overruns: 5,
                timeout_errors: 6,
                alignment_errors: 7,
            }),
            ControlMessage::Sli(Sli {
                peer_call_id: 1,
                send_accm: 0xffff_ffff,
                recv_accm: 0,
            }),
            ControlMessage::Unknown {
                message_type: 99,
                body: vec![1, 2, 3],
            },
        ]
    }

    #[test]
    fn every_message_round_trips_with_its_defined_length() {
        for m in sample_messages() {
            let bytes = m.emit();
            if let Some(len) = defined_length(m.message_type()) {
                assert_eq!(bytes.len(), len, "{m:?}");
            }
            assert_eq!(ControlMessage::parse(&bytes), Ok(m.clone()));
            // and parse → emit gives the same bytes again
            assert_eq!(ControlMessage::parse(&bytes).map(|p| p.emit()), Ok(bytes));
        }
    }

    #[test]
    fn echo_request_bytes() {
        let b = ControlMessage::EchoRequest {
            identifier: 0x0102_0304,
        }
        .emit();
        assert_eq!(
            b,
            [0, 16, 0, 1, 0x1a, 0x2b, 0x3c, 0x4d, 0, 5, 0, 0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn header_checks() {
        let good = ControlMessage::EchoRequest { identifier: 1 }.emit();
        assert_eq!(
            ControlMessage::parse(&good[..11]),
            Err(ParseError::Truncated(11))
        );
        let mut b = good.clone();
        b[7] = 0x4e;
        assert_eq!(
            ControlMessage::parse(&b),
            Err(ParseError::BadMagic(0x1a2b_3c4e))
        );
        let mut b = good.clone();
        b[3] = 2;
        assert_eq!(ControlMessage::parse(&b), Err(ParseError::NotControl(2)));
        let mut b = good.clone();
        b.push(0);
        assert_eq!(
            ControlMessage::parse(&b),
            Err(ParseError::LengthMismatch {
                declared: 16,
                actual: 17
            })
        );
    }

    #[test]
    fn short_known_message_is_refused_long_one_accepted() {
        // An Echo-Reply (20 bytes) cut to 16 with a consistent length field.
        let mut b = ControlMessage::EchoReply {
            identifier: 1,
            result: EchoResult::Ok,
            error: GeneralError::None,
        }
        .emit();
        b.truncate(16);
        b[1] = 16;
        assert_eq!(
            ControlMessage::parse(&b),
            Err(ParseError::TooShort {
                message_type: 6,
                expected: 20,
                actual: 16
            })
        );
        // A Stop-Control-Connection-Request with 4 extra bytes: accepted, extra ignored.
        let mut b = ControlMessage::StopCcrq {
            reason: StopReason::None,
        }
        .emit();
        b.extend_from_slice(&[9, 9, 9, 9]);
        b[1] = 20;
        assert_eq!(
            ControlMessage::parse(&b),
            Ok(ControlMessage::StopCcrq {
                reason: StopReason::None
            })
        );
    }

    #[test]
    fn text_fields_stop_at_nul_and_ignore_garbage() {
        let mut b = ControlMessage::Sccrq(Sccrq {
            protocol_version: PROTOCOL_VERSION,
            framing_capabilities: 0,
            bearer_capabilities: 0,
            maximum_channels: 0,
            firmware_revision: 0,
            host_name: "abc".into(),
            vendor_string: "".into(),
        })
        .emit();
        // host name field starts at offset 28: "abc\0" then garbage
        b[32..40].copy_from_slice(b"GARBAGE!");
        // vendor field entirely non-NUL (64 bytes, no terminator)
        for x in &mut b[92..156] {
            *x = b'v';
        }
        match ControlMessage::parse(&b) {
            Ok(ControlMessage::Sccrq(m)) => {
                assert_eq!(m.host_name.as_bytes(), b"abc");
                assert_eq!(m.vendor_string.len(), 64);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn over_long_text_is_cut_to_the_field() {
        let long = "x".repeat(100);
        let b = ControlMessage::Ocrq(Ocrq {
            call_id: 1,
            call_serial: 0,
            minimum_bps: 0,
            maximum_bps: 0,
            bearer_type: 0,
            framing_type: 0,
            recv_window: 0,
            processing_delay: 0,
            phone_number: long.as_str().into(),
            subaddress: "".into(),
        })
        .emit();
        assert_eq!(b.len(), 168);
        assert_eq!(u16::from_be_bytes([b[36], b[37]]), 64); // Phone Number Length
    }

    #[test]
    fn unknown_codes_are_values() {
        assert_eq!(StartResult::from(42), StartResult::Unknown(42));
        assert_eq!(u8::from(StartResult::Unknown(42)), 42);
        assert_eq!(u8::from(OutgoingCallResult::DoNotAccept), 7);
        assert_eq!(DisconnectResult::from(4), DisconnectResult::Request);
    }

    #[test]
    fn deframer_splits_and_buffers() {
        let a = ControlMessage::EchoRequest { identifier: 1 }.emit();
        let b = ControlMessage::Ccrq { call_id: 2 }.emit();
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let mut d = Deframer::new();
        // byte by byte
        let mut out = Vec::new();
        for x in &stream {
            d.push(std::slice::from_ref(x));
            while let Ok(Some(m)) = d.next_message() {
                out.push(m);
            }
        }
        assert_eq!(out, vec![a, b]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn parse_refuses_messages_longer_than_the_framer_allows() {
        let mut m = vec![0u8; MAX_MESSAGE_LEN + 1];
        m[0..2].copy_from_slice(&(MAX_MESSAGE_LEN as u16 + 1).to_be_bytes());
        m[2..4].copy_from_slice(&PPTP_MESSAGE_CONTROL.to_be_bytes());
        m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m[8..10].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            ControlMessage::parse(&m),
            Err(ParseError::BadLength(MAX_MESSAGE_LEN as u16 + 1))
        );
        // One byte less is the longest message there is: accepted.
        m.truncate(MAX_MESSAGE_LEN);
        m[0..2].copy_from_slice(&(MAX_MESSAGE_LEN as u16).to_be_bytes());
        assert!(ControlMessage::parse(&m).is_ok());
    }

    #[test]
    fn deframer_refuses_bad_lengths_and_stays_failed() {
        for len in [0u16, 1, 11, 1025, 0xffff] {
            let mut d = Deframer::new();
            d.push(&len.to_be_bytes());
            assert_eq!(d.next_message(), Err(ParseError::BadLength(len)));
            d.push(&ControlMessage::EchoRequest { identifier: 1 }.emit());
            assert_eq!(d.next_message(), Ok(None));
        }
        assert_eq!(message_length(&[0]), Ok(None));
        assert_eq!(message_length(&[0, 12]), Ok(Some(12)));
        assert_eq!(message_length(&[4, 0]), Ok(Some(1024)));
    }
}
