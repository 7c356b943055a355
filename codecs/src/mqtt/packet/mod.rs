//! One file per MQTT control packet: the struct, `decode`, `body_len`/`encode_body`, and unit
//! tests with spec byte vectors. PINGREQ and PINGRESP have no body and no file.

pub(crate) mod ack;
pub(crate) mod auth;
pub(crate) mod connack;
pub(crate) mod connect;
pub(crate) mod disconnect;
pub(crate) mod publish;
pub(crate) mod suback;
pub(crate) mod subscribe;
pub(crate) mod unsuback;
pub(crate) mod unsubscribe;
