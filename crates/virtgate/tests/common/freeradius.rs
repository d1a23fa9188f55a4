//! A FreeRADIUS 3 configuration for tests (Debian's `freeradius` package): PAP, CHAP and
//! MS-CHAP (with MPPE keys) against the `users` file beside it, accounting to `detail`, one
//! client 127.0.0.1 with `secret`, auth and acct on `addr` ports 1812/1813. Used by
//! tests/radius.rs and the RADIUS real-peer check.

use std::path::Path;

/// The radiusd.conf text for a server whose files live in `dir`.
pub fn config(dir: &Path, addr: &str, secret: &str) -> String {
    let d = dir.display();
    format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = {d}
modconfdir = {d}
certdir = {d}
cadir = {d}
run_dir = {d}/run
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
	destination = stdout
	auth = yes
}}
security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}}
thread pool {{
	start_servers = 1
	max_servers = 4
	min_spare_servers = 1
	max_spare_servers = 2
	max_requests_per_server = 0
}}
modules {{
	pap {{
	}}
	chap {{
	}}
	mschap {{
		use_mppe = yes
		require_encryption = yes
		require_strong = yes
	}}
	files {{
		filename = {d}/users
	}}
	detail {{
		filename = {d}/detail
		permissions = 0600
		header = "%t"
	}}
}}
client nas {{
	ipaddr = 127.0.0.1
	secret = {secret}
}}
server default {{
	listen {{
		type = auth
		ipaddr = {addr}
		port = 1812
	}}
	listen {{
		type = acct
		ipaddr = {addr}
		port = 1813
	}}
	authorize {{
		files
		mschap
		chap
		pap
	}}
	authenticate {{
		Auth-Type PAP {{
			pap
		}}
		Auth-Type CHAP {{
			chap
		}}
		Auth-Type MS-CHAP {{
			mschap
		}}
	}}
	preacct {{
	}}
	accounting {{
		detail
	}}
	post-auth {{
	}}
}}
"#
    )
}
