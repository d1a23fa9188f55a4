//! Attribute types (RFC 2865 §5, RFC 2866 §5, RFC 2869, RFC 3579, RFC 5176 §3) and the
//! Microsoft vendor-specific attributes (RFC 2548 §2), with the value layouts this crate uses.

pub const USER_NAME: u8 = 1;
pub const USER_PASSWORD: u8 = 2;
pub const CHAP_PASSWORD: u8 = 3;
pub const NAS_IP_ADDRESS: u8 = 4;
pub const NAS_PORT: u8 = 5;
pub const SERVICE_TYPE: u8 = 6;
pub const FRAMED_PROTOCOL: u8 = 7;
pub const FRAMED_IP_ADDRESS: u8 = 8;
pub const FRAMED_IP_NETMASK: u8 = 9;
pub const FILTER_ID: u8 = 11;
pub const FRAMED_MTU: u8 = 12;
pub const REPLY_MESSAGE: u8 = 18;
pub const STATE: u8 = 24;
pub const CLASS: u8 = 25;
pub const VENDOR_SPECIFIC: u8 = 26;
pub const SESSION_TIMEOUT: u8 = 27;
pub const IDLE_TIMEOUT: u8 = 28;
pub const CALLED_STATION_ID: u8 = 30;
pub const CALLING_STATION_ID: u8 = 31;
pub const NAS_IDENTIFIER: u8 = 32;
pub const PROXY_STATE: u8 = 33;
pub const ACCT_STATUS_TYPE: u8 = 40;
pub const ACCT_DELAY_TIME: u8 = 41;
pub const ACCT_INPUT_OCTETS: u8 = 42;
pub const ACCT_OUTPUT_OCTETS: u8 = 43;
pub const ACCT_SESSION_ID: u8 = 44;
pub const ACCT_AUTHENTIC: u8 = 45;
pub const ACCT_SESSION_TIME: u8 = 46;
pub const ACCT_INPUT_PACKETS: u8 = 47;
pub const ACCT_OUTPUT_PACKETS: u8 = 48;
pub const ACCT_TERMINATE_CAUSE: u8 = 49;
pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
pub const EVENT_TIMESTAMP: u8 = 55;
pub const CHAP_CHALLENGE: u8 = 60;
pub const NAS_PORT_TYPE: u8 = 61;
pub const TUNNEL_TYPE: u8 = 64;
pub const TUNNEL_MEDIUM_TYPE: u8 = 65;
pub const TUNNEL_CLIENT_ENDPOINT: u8 = 66;
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
pub const ACCT_INTERIM_INTERVAL: u8 = 85;
pub const NAS_PORT_ID: u8 = 87;
pub const FRAMED_POOL: u8 = 88;
pub const ERROR_CAUSE: u8 = 101;

/// Service-Type Framed-User (RFC 2865 §5.6).
pub const SERVICE_FRAMED: u32 = 2;
/// Framed-Protocol PPP (RFC 2865 §5.7).
pub const FRAMED_PPP: u32 = 1;
/// NAS-Port-Type Virtual (RFC 2865 §5.41).
pub const PORT_VIRTUAL: u32 = 5;
/// Tunnel-Type PPTP, Tunnel-Medium-Type IPv4 (RFC 2868 §3.1, §3.2).
pub const TUNNEL_PPTP: u32 = 1;
pub const MEDIUM_IPV4: u32 = 1;

/// Acct-Status-Type (RFC 2866 §5.1, RFC 2869 §5.1).
pub mod status {
    pub const START: u32 = 1;
    pub const STOP: u32 = 2;
    pub const INTERIM_UPDATE: u32 = 3;
}

/// Acct-Authentic (RFC 2866 §5.6).
pub mod authentic {
    pub const RADIUS: u32 = 1;
    pub const LOCAL: u32 = 2;
}

/// Acct-Terminate-Cause (RFC 2866 §5.10).
pub mod terminate {
    pub const USER_REQUEST: u32 = 1;
    pub const LOST_CARRIER: u32 = 2;
    pub const LOST_SERVICE: u32 = 3;
    pub const IDLE_TIMEOUT: u32 = 4;
    pub const SESSION_TIMEOUT: u32 = 5;
    pub const ADMIN_RESET: u32 = 6;
    pub const ADMIN_REBOOT: u32 = 7;
    pub const PORT_ERROR: u32 = 8;
    pub const NAS_ERROR: u32 = 9;
    pub const NAS_REQUEST: u32 = 10;
    pub const NAS_REBOOT: u32 = 11;
}

/// Error-Cause values (RFC 5176 §3.5).
pub mod error_cause {
    pub const UNSUPPORTED_ATTRIBUTE: u32 = 401;
    pub const MISSING_ATTRIBUTE: u32 = 402;
    pub const NAS_IDENTIFICATION_MISMATCH: u32 = 403;
    pub const INVALID_REQUEST: u32 = 404;
    pub const UNSUPPORTED_SERVICE: u32 = 405;
    pub const SESSION_CONTEXT_NOT_FOUND: u32 = 503;
    pub const RESOURCES_UNAVAILABLE: u32 = 506;
}

/// Microsoft's vendor attributes (RFC 2548 §2), Vendor-Id 311.
pub mod ms {
    pub const VENDOR_ID: u32 = 311;
    /// Ident (1) + LM-Response (24) + NT-Response (24) + Flags... (RFC 2548 §2.1.3: 50 octets
    /// with Flags after Ident).
    pub const CHAP_RESPONSE: u8 = 1;
    /// Ident (1) + "E=... R=... C=... V=..." (RFC 2548 §2.1.5).
    pub const CHAP_ERROR: u8 = 2;
    /// 0 = encryption allowed, 1 = required (RFC 2548 §2.4.4).
    pub const MPPE_ENCRYPTION_POLICY: u8 = 7;
    /// Bit 0x02 = 40-bit, 0x04 = 128-bit (RFC 2548 §2.4.5; 0x08 = 56-bit in practice).
    pub const MPPE_ENCRYPTION_TYPES: u8 = 8;
    /// The authenticator's challenge (RFC 2548 §2.3.1).
    pub const CHAP_CHALLENGE: u8 = 11;
    /// Salt (2) + encrypted String (RFC 2548 §2.4.2, §2.4.3).
    pub const MPPE_SEND_KEY: u8 = 16;
    pub const MPPE_RECV_KEY: u8 = 17;
    /// Ident (1) + Flags (1) + Peer-Challenge (16) + Reserved (8) + Response (24)
    /// (RFC 2548 §2.3.2).
    pub const CHAP2_RESPONSE: u8 = 25;
    /// Ident (1) + "S=<authenticator response>" (RFC 2548 §2.3.3).
    pub const CHAP2_SUCCESS: u8 = 26;

    /// MS-MPPE-Encryption-Types bits.
    pub const TYPES_40: u32 = 0x02;
    pub const TYPES_128: u32 = 0x04;
    pub const TYPES_56: u32 = 0x08;
}
