//! Differential fuzzing of the server-side MQTT decoder against rumqttc 0.25's
//! (`mqttbytes`): byte 0 picks 3.1.1 or 5.0, the rest is the stream. Whatever packet
//! ours accepts, rumqttc must read from the same bytes to the same fields. rumqttc is a
//! lenient client library and the spec decides where they disagree; what is allowed to
//! differ is `intended_divergence` below, each item one of the list in
//! codecs/tests/differential.rs (ours stricter than rumqttc is never checked: item 6).
#![no_main]

use bytes::BytesMut;
use dwbroker_codecs::mqtt::{Codec, Packet, ProtocolVersion};
use libfuzzer_sys::fuzz_target;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use tokio_util::codec::Decoder;

#[path = "../../codecs/tests/support/rumqttc.rs"]
mod convert;

const MAX: usize = 1 << 20;

/// Packets whose wire form rumqttc reads differently or not at all, by design.
fn intended_divergence(p: &Packet, version: ProtocolVersion, bytes: &[u8]) -> bool {
    let v5 = version == ProtocolVersion::V5;
    match p {
        // 8: AUTH cannot be built or inspected through rumqttc's API.
        Packet::Auth(_) => true,
        // 1 and 2: the Remaining Length 0 and 1 forms of DISCONNECT (§3.14.2.1).
        Packet::Disconnect(_) if v5 && bytes.get(1).is_some_and(|rl| *rl < 2) => true,
        _ if v5 && convert::reason_only_disconnect(p) => true,
        // 5: rumqttc's reason-code enums hold a subset of the codes; ours keep any byte.
        Packet::PubAck(a) if v5 => !known(&convert::v5_puback_codes(), a.code.0),
        Packet::PubRec(a) if v5 => !known(&convert::v5_pubrec_codes(), a.code.0),
        Packet::PubRel(a) if v5 => !known(&convert::v5_pubrel_codes(), a.code.0),
        Packet::PubComp(a) if v5 => !known(&convert::v5_pubcomp_codes(), a.code.0),
        Packet::Disconnect(d) if v5 => {
            rumqttc::v5::mqttbytes::v5::DisconnectReasonCode::try_from(d.code.0).is_err()
        }
        // 3: passwords are binary (rumqttc's are Strings); 9: rumqttc's one optional Login
        // for user name and password drops them when both are empty.
        Packet::Connect(c) => {
            c.password
                .as_ref()
                .is_some_and(|pw| std::str::from_utf8(pw).is_err())
                || (c.username.as_deref().unwrap_or("").is_empty()
                    && c.password.as_deref().unwrap_or(b"").is_empty()
                    && (c.username.is_some() || c.password.is_some()))
        }
        _ => false,
    }
}

fn known<T>(table: &[(T, u8)], code: u8) -> bool {
    table.iter().any(|(_, c)| *c == code)
}

fuzz_target!(|data: &[u8]| {
    let [mode, stream @ ..] = data else { return };
    let version = if mode & 1 == 1 {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    };
    let mut codec = Codec::server(MAX as u32);
    codec.set_version(version);
    let mut buf = BytesMut::from(stream);
    let Ok(Some(ours)) = codec.decode(&mut buf) else {
        return;
    };
    let bytes = &stream[..stream.len() - buf.len()];
    if intended_divergence(&ours, version, bytes) {
        return;
    }
    // A CONNECT carries its own version, whatever the codec was set to.
    let version = match &ours {
        Packet::Connect(c) => c.version,
        _ => version,
    };
    let mut theirs_buf = BytesMut::from(bytes);
    let theirs = if version == ProtocolVersion::V5 {
        v5::Packet::read(&mut theirs_buf, None)
            .map(convert::from_v5)
            .map_err(|e| format!("{e:?}"))
    } else {
        v4::Packet::read(&mut theirs_buf, MAX)
            .map(convert::from_v4)
            .map_err(|e| format!("{e:?}"))
    };
    match theirs {
        Ok(theirs) => assert_eq!(theirs, ours, "rumqttc reads {bytes:02x?} differently"),
        Err(e) => panic!("rumqttc refuses {bytes:02x?} which we accept as {ours:?}: {e}"),
    }
});
