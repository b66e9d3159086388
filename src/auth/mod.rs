//! Authentication and authorization: mosquitto's password file (`password_file`) and ACL file
//! (`acl_file`), parsed from text. File reading happens at the edge (the broker's start-up and
//! SIGHUP reload, and the `midge_passwd` tool); everything here works on `&str` / `&[u8]`.

pub mod acl;
pub(crate) mod base64;
pub mod password;
