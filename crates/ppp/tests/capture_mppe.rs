//! End-to-end against a real implementation: `mschapv2-mppe128-stateless.pcap` (poptop pptpd +
//! Linux pppd/ppp_mppe as the server, pptp-linux as the client, user `user1`, password
//! `password1`). From the captured MS-CHAPv2 exchange we verify the NT-Response, reproduce the
//! server's Success message, derive both directions' MPPE keys (RFC 3079 §3.3), decrypt every
//! MPPE packet the two kernels sent to checksum-valid IP, and re-encrypt the plaintexts to the
//! captured bytes.

use std::net::Ipv4Addr;

use virtgate_fixtures::{read_capture, PacketKind};
use virtgate_ppp::mppe::{
    self, mschapv2_start_keys, KeyLength, MppeBits, MppeDecrypter, MppeEncrypter, MppeHeader,
};
use virtgate_ppp::mschap::v2;
use virtgate_pptp::gre::GreHeader;

const CAPTURE: &str = "mschapv2-mppe128-stateless.pcap";
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 20);
const PASSWORD: &str = "password1";

const PROTO_CHAP: u16 = 0xC223;
const PROTO_CCP: u16 = 0x80FD;
const PROTO_IPV4: u16 = 0x0021;
const PROTO_IPV6: u16 = 0x0057;

/// One PPP frame from the capture: who sent it, protocol, information field.
struct Frame {
    from_server: bool,
    protocol: u16,
    info: Vec<u8>,
}

/// The PPP frames in GRE payloads, in capture order. ACFC and PFC are in use, so the address
/// and control octets may be missing and the protocol may be one octet (RFC 1661 §6.5–§6.6).
fn frames() -> Vec<Frame> {
    let capture = read_capture(CAPTURE);
    let mut out = Vec::new();
    for (packet, bytes) in capture.gre() {
        assert!(matches!(packet.kind, PacketKind::Gre { .. }));
        let from_server = match (packet.src, packet.dst) {
            (SERVER, CLIENT) => true,
            (CLIENT, SERVER) => false,
            other => panic!("unexpected GRE endpoints {other:?}"),
        };
        let (header, hlen) = GreHeader::parse(bytes).expect("valid enhanced GRE header");
        if header.payload_len == 0 {
            continue; // ack-only
        }
        let payload = &bytes[hlen..hlen + usize::from(header.payload_len)];
        let ppp = payload.strip_prefix(&[0xFF, 0x03]).unwrap_or(payload);
        let (protocol, info) = if ppp[0] & 1 == 1 {
            (u16::from(ppp[0]), &ppp[1..])
        } else {
            (u16::from_be_bytes([ppp[0], ppp[1]]), &ppp[2..])
        };
        out.push(Frame {
            from_server,
            protocol,
            info: info.to_vec(),
        });
    }
    out
}

/// The captured MS-CHAPv2 exchange.
struct Exchange {
    auth_challenge: [u8; 16],
    response: v2::Response,
    name: Vec<u8>,
    success: Vec<u8>,
}

fn exchange(frames: &[Frame]) -> Exchange {
    let chap: Vec<&Frame> = frames.iter().filter(|f| f.protocol == PROTO_CHAP).collect();
    let find = |code: u8, from_server: bool| {
        let f = chap
            .iter()
            .find(|f| f.info[0] == code && f.from_server == from_server)
            .unwrap_or_else(|| panic!("no CHAP code {code}"));
        let len = usize::from(u16::from_be_bytes([f.info[2], f.info[3]]));
        (f.info[1], f.info[4..len].to_vec())
    };
    let (challenge_id, challenge) = find(1, true);
    assert_eq!(challenge[0], 16, "MS-CHAPv2 challenge Value-Size");
    let auth_challenge: [u8; 16] = challenge[1..17].try_into().unwrap();
    assert_eq!(&challenge[17..], b"pptpd", "authenticator name");

    let (response_id, response) = find(2, false);
    assert_eq!(response_id, challenge_id);
    assert_eq!(response[0], 49, "MS-CHAPv2 response Value-Size");
    let parsed = v2::Response::parse(&response[1..50]).unwrap();
    assert_eq!(parsed.to_bytes().as_slice(), &response[1..50]);

    let (success_id, success) = find(3, true);
    assert_eq!(success_id, challenge_id);
    Exchange {
        auth_challenge,
        response: parsed,
        name: response[50..].to_vec(),
        success,
    }
}

#[test]
fn mschapv2_exchange_verifies_and_success_message_is_reproduced() {
    let frames = frames();
    let ex = exchange(&frames);
    assert_eq!(ex.name, b"user1");
    assert_eq!(ex.response.flags, 0);
    assert!(v2::verify_nt_response(
        &ex.auth_challenge,
        &ex.response.peer_challenge,
        &ex.name,
        PASSWORD,
        &ex.response.nt_response,
    ));
    assert!(!v2::verify_nt_response(
        &ex.auth_challenge,
        &ex.response.peer_challenge,
        &ex.name,
        "password2",
        &ex.response.nt_response,
    ));
    // What the client generates from the challenge is what it sent.
    let regenerated = v2::Response::generate(
        &ex.auth_challenge,
        &ex.response.peer_challenge,
        &ex.name,
        PASSWORD,
    );
    assert_eq!(regenerated, ex.response);

    let auth = v2::generate_authenticator_response(
        PASSWORD,
        &ex.response.nt_response,
        &ex.response.peer_challenge,
        &ex.auth_challenge,
        &ex.name,
    );
    assert!(v2::success_message(&auth, "").starts_with("S=A36A6F84"));
    // Byte for byte what pppd sent.
    assert_eq!(
        v2::success_message(&auth, "Access granted").as_bytes(),
        ex.success.as_slice()
    );
    assert_eq!(
        ex.success.as_slice(),
        b"S=A36A6F846DA4F3019AC21BCA8A6B223F0F8A6BA5 M=Access granted"
    );
    let parsed = v2::parse_success(&ex.success).unwrap();
    assert!(v2::authenticator_response_matches(
        &auth,
        &parsed.auth_response
    ));
    assert_eq!(parsed.message.as_deref(), Some("Access granted"));
}

#[test]
fn ccp_agreed_on_stateless_128_bit_mppe() {
    let frames = frames();
    let acks: Vec<MppeBits> = frames
        .iter()
        .filter(|f| f.protocol == PROTO_CCP && f.info[0] == 2) // Configure-Ack
        .map(|f| {
            let option = &f.info[4..];
            assert_eq!(option[0], mppe::CCP_OPTION);
            assert_eq!(option[1], 6);
            MppeBits::parse(&option[2..6]).unwrap()
        })
        .collect();
    assert_eq!(acks.len(), 2, "one Configure-Ack each way");
    for bits in acks {
        assert_eq!(bits.to_bytes(), [0x01, 0x00, 0x00, 0x40]);
        assert!(bits.stateless());
        assert_eq!(bits.strongest(), Some(KeyLength::Bits128));
        assert_eq!(bits.key_length_count(), 1);
    }
}

/// Internet checksum (RFC 1071) over `data`, folded, not complemented.
fn ones_complement_sum(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum
}

/// Checks an IPv4 packet: version, lengths, header checksum, and the ICMP or TCP checksum.
/// Returns the transport protocol.
fn check_ipv4(packet: &[u8]) -> u8 {
    assert_eq!(packet[0] >> 4, 4, "IPv4 version");
    let ihl = usize::from(packet[0] & 0x0F) * 4;
    assert!(ihl >= 20);
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    assert_eq!(
        total,
        packet.len(),
        "IPv4 total length matches the PPP payload"
    );
    assert_eq!(
        ones_complement_sum(&packet[..ihl], 0),
        0xFFFF,
        "IPv4 header checksum"
    );
    let protocol = packet[9];
    let payload = &packet[ihl..];
    match protocol {
        1 => assert_eq!(ones_complement_sum(payload, 0), 0xFFFF, "ICMP checksum"),
        6 => {
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&packet[12..20]);
            pseudo.extend_from_slice(&[0, 6]);
            pseudo.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            let sum = ones_complement_sum(&pseudo, 0);
            assert_eq!(ones_complement_sum(payload, sum), 0xFFFF, "TCP checksum");
        }
        other => panic!("unexpected IPv4 protocol {other}"),
    }
    protocol
}

#[test]
fn all_mppe_packets_decrypt_to_valid_ip_both_ways() {
    let frames = frames();
    let ex = exchange(&frames);
    let server = mschapv2_start_keys(PASSWORD, &ex.response.nt_response, true);
    let client = mschapv2_start_keys(PASSWORD, &ex.response.nt_response, false);
    assert_eq!(server.send, client.recv);
    assert_eq!(server.recv, client.send);

    for from_server in [true, false] {
        let (send_key, recv_key) = if from_server {
            (&server.send, &client.recv)
        } else {
            (&client.send, &server.recv)
        };
        let mut decrypter = MppeDecrypter::new(recv_key, KeyLength::Bits128, true);
        let mut encrypter = MppeEncrypter::new(send_key, KeyLength::Bits128, true);
        let mut counts = Vec::new();
        let (mut ipv4, mut ipv6, mut icmp, mut tcp) = (0, 0, 0, 0);
        for f in frames
            .iter()
            .filter(|f| f.from_server == from_server && f.protocol == mppe::PROTOCOL)
        {
            let mut datagram = f.info.clone();
            let (header, body) = mppe::split_header(&mut datagram).unwrap();
            let h = MppeHeader::from_bytes(header);
            assert!(
                h.flushed() && h.encrypted(),
                "A and D on every stateless packet"
            );
            assert_eq!(h.flags, mppe::FLAG_FLUSHED | mppe::FLAG_ENCRYPTED);
            counts.push(h.count);
            let ciphertext = body.to_vec();
            decrypter
                .decrypt(header, body)
                .unwrap_or_else(|e| panic!("count {}: {e}", h.count));

            // Linux always sends the uncompressed 2-octet protocol inside MPPE.
            let protocol = u16::from_be_bytes([body[0], body[1]]);
            let ip = &body[2..];
            match protocol {
                PROTO_IPV4 => {
                    ipv4 += 1;
                    match check_ipv4(ip) {
                        1 => icmp += 1,
                        _ => tcp += 1,
                    }
                }
                PROTO_IPV6 => {
                    ipv6 += 1;
                    assert_eq!(
                        h.count, 0,
                        "the IPv6 router solicitation is the first packet"
                    );
                    assert_eq!(ip[0] >> 4, 6);
                    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                    assert_eq!(40 + payload_len, ip.len());
                    assert_eq!(ip[6], 58, "ICMPv6");
                    assert_eq!(ip[40], 133, "router solicitation");
                }
                other => panic!("count {}: decrypted protocol {other:#06x}", h.count),
            }

            // Our encrypter, fed the plaintext, produces the kernel's bytes exactly.
            let mut again = body.to_vec();
            assert_eq!(encrypter.encrypt(&mut again), header, "count {}", h.count);
            assert_eq!(again, ciphertext, "count {}", h.count);
        }
        let dir = if from_server {
            "server->client"
        } else {
            "client->server"
        };
        assert_eq!(
            counts,
            (0..31).collect::<Vec<u16>>(),
            "{dir} coherency counts"
        );
        assert_eq!((ipv4, ipv6), (30, 1), "{dir}");
        assert!(
            icmp > 0 && tcp > 0,
            "{dir}: pings and HTTP ({icmp} ICMP, {tcp} TCP)"
        );
    }
}

#[test]
fn wrong_direction_key_does_not_decrypt() {
    // Guards the test above: with the other direction's key the plaintext is garbage.
    let frames = frames();
    let ex = exchange(&frames);
    let server = mschapv2_start_keys(PASSWORD, &ex.response.nt_response, true);
    let mut decrypter = MppeDecrypter::new(&server.send, KeyLength::Bits128, true);
    let mut bad = 0;
    for f in frames
        .iter()
        .filter(|f| !f.from_server && f.protocol == mppe::PROTOCOL)
    {
        let mut datagram = f.info.clone();
        let (header, body) = mppe::split_header(&mut datagram).unwrap();
        decrypter.decrypt(header, body).unwrap();
        if !matches!(
            u16::from_be_bytes([body[0], body[1]]),
            PROTO_IPV4 | PROTO_IPV6
        ) {
            bad += 1;
        }
    }
    assert!(bad >= 29, "{bad} of 31 garbled");
}
