//! The engine's side of RADIUS (crate::radius): where a session's authentication goes to
//! RADIUS, what an answer does to the session, accounting at Up and at the end, and
//! Disconnect/CoA acting on sessions. Kept apart from daemon.rs so the engine keeps one line
//! per hook.

use std::time::Instant;

use virtgate_ppp::auth::ExternalVerdict;

use super::{limit_deadline, Call, Engine, TimerKey};
use crate::radius::{AcctInfo, Action, AuthOutcome, Counters};
use crate::settings::Limits;

fn counters(c: &Call) -> Counters {
    let k = c.link.counters;
    Counters {
        in_octets: k.rx_bytes,
        out_octets: k.tx_bytes,
        in_packets: k.rx_packets,
        out_packets: k.tx_packets,
    }
}

impl Engine {
    /// A SecretRequest: true when RADIUS took it (the verdict comes later).
    pub(super) fn radius_secret_request(&mut self, id: u16, now: Instant, peer_name: &str) -> bool {
        let local = self.settings.secret_for(peer_name).is_some();
        let Some(r) = self.radius.as_mut() else {
            return false;
        };
        if !r.decides(local) {
            return false;
        }
        let Some(e) = self.calls.get_mut(id) else {
            return true;
        };
        e.value.user = Some(peer_name.to_string());
        let Some(creds) = e.value.link.session.pending_credentials() else {
            // A response that does not parse for the method: refused, as locally.
            e.value
                .link
                .session
                .provide_verdict(now, ExternalVerdict::Reject { message: None });
            self.drive_call(id, now);
            return true;
        };
        match r.authenticate(now, id, e.peer, &creds) {
            Ok(()) => {
                tracing::debug!(peer = %e.peer, user = peer_name, "asking RADIUS");
            }
            Err(err) => {
                tracing::warn!(peer = %e.peer, user = peer_name, "RADIUS request not sent: {err}");
                e.value.close_reason = Some("RADIUS request not sent");
                e.value
                    .link
                    .session
                    .close(now, "Authentication server unavailable");
                self.drive_call(id, now);
            }
        }
        true
    }

    pub(super) fn radius_readable(&mut self) {
        let now = Instant::now();
        let actions = match self.radius.as_mut() {
            Some(r) => r.on_readable(now),
            None => return,
        };
        self.radius_actions(now, actions);
    }

    pub(super) fn radius_timers(&mut self, now: Instant) {
        let due = self
            .radius
            .as_ref()
            .and_then(|r| r.next_deadline())
            .is_some_and(|t| t <= now);
        if !due {
            return;
        }
        let actions = match self.radius.as_mut() {
            Some(r) => r.on_timeout(now),
            None => return,
        };
        self.radius_actions(now, actions);
    }

    pub(super) fn radius_deadline(&self) -> Option<Instant> {
        self.radius.as_ref().and_then(|r| r.next_deadline())
    }

    fn radius_actions(&mut self, now: Instant, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Auth { call, outcome } => self.radius_verdict(call, now, outcome),
                Action::Interim { call } => {
                    let Some(e) = self.calls.get(call) else {
                        continue;
                    };
                    let k = counters(&e.value);
                    if let Some(r) = self.radius.as_mut() {
                        r.acct_interim(now, call, k);
                    }
                }
                Action::Disconnect { calls } => {
                    for id in calls {
                        if let Some(e) = self.calls.get_mut(id) {
                            tracing::info!(peer = %e.peer, user = e.value.user.as_deref().unwrap_or("?"),
                                "RADIUS Disconnect-Request: hanging up");
                            e.value.close_reason = Some("RADIUS Disconnect-Request");
                            e.value.link.session.close(now, "Administrator request");
                        }
                        self.drive_call(id, now);
                    }
                }
                Action::Coa {
                    calls,
                    session_timeout,
                    idle_timeout,
                } => {
                    let global = self.settings.limits();
                    for id in calls {
                        let Some(e) = self.calls.get_mut(id) else {
                            continue;
                        };
                        let c = &mut e.value;
                        let mut l = c.limits.unwrap_or(global);
                        if session_timeout.is_some() {
                            l.maxconnect = session_timeout;
                        }
                        if idle_timeout.is_some() {
                            l.idle = idle_timeout;
                        }
                        c.limits = Some(l);
                        tracing::info!(peer = %e.peer, user = c.user.as_deref().unwrap_or("?"),
                            ?session_timeout, ?idle_timeout, "RADIUS CoA: new limits");
                        if let Some(up) = c.up_since {
                            let t = limit_deadline(l, up, c.last_data);
                            self.timers.set(TimerKey::Limit(id), t);
                        }
                    }
                }
            }
        }
    }

    fn radius_verdict(&mut self, id: u16, now: Instant, outcome: AuthOutcome) {
        let fallback = self
            .radius
            .as_ref()
            .is_some_and(|r| r.falls_back_to_local());
        let settings = self.settings.clone();
        let Some(e) = self.calls.get_mut(id) else {
            return;
        };
        let peer = e.peer;
        let c = &mut e.value;
        let user = c.user.clone().unwrap_or_default();
        match outcome {
            AuthOutcome::Accept(authz, verdict) => {
                tracing::info!(%peer, user, framed_ip = ?authz.framed_ip,
                    session_timeout = ?authz.session_timeout, idle_timeout = ?authz.idle_timeout,
                    mppe_keys = matches!(verdict, ExternalVerdict::Accept { mppe_keys: Some(_), .. }),
                    "RADIUS Access-Accept");
                if authz.session_timeout.is_some() || authz.idle_timeout.is_some() {
                    let g = settings.limits();
                    c.limits = Some(Limits {
                        idle: authz.idle_timeout.or(g.idle),
                        maxconnect: authz.session_timeout.or(g.maxconnect),
                    });
                }
                if let Some(ip) = authz.framed_ip {
                    if !settings.firewall_pool().contains(&ip) {
                        tracing::warn!(%peer, user, %ip,
                            "RADIUS Framed-IP-Address is outside remoteip and chap-secrets: \
                             virtgate's firewall rules do not name it (widen remoteip, or manage \
                             the firewall yourself)");
                    }
                }
                c.radius = Some(*authz);
                c.link.session.provide_verdict(now, verdict);
            }
            AuthOutcome::Reject(verdict, why) => {
                tracing::warn!(%peer, user, "RADIUS: {why}");
                c.link.session.provide_verdict(now, verdict);
            }
            AuthOutcome::NoAnswer => {
                if fallback {
                    let secret = settings.secret_for(&user);
                    tracing::warn!(%peer, user, local = secret.is_some(),
                        "no RADIUS server answered: chap-secrets decides (radius-order radius-first)");
                    c.link.session.provide_secret(now, secret);
                } else {
                    // Not the user's failure: no Failure (which would count towards a
                    // lockout), the link is closed with the reason.
                    c.close_reason = Some("no RADIUS server answered");
                    c.link
                        .session
                        .close(now, "Authentication server unavailable");
                }
            }
        }
        self.drive_call(id, now);
    }

    /// Accounting Start for a session that came up.
    pub(super) fn radius_up(&mut self, id: u16, now: Instant) {
        let Some(r) = self.radius.as_mut() else {
            return;
        };
        let Some(e) = self.calls.get_mut(id) else {
            return;
        };
        let Some(ip) = e.tunnel_ip else {
            return;
        };
        let c = &mut e.value;
        let info = AcctInfo {
            user: c.user.clone().unwrap_or_default(),
            peer: e.peer,
            framed_ip: ip,
            by_radius: c.radius.is_some(),
            class: c
                .radius
                .as_ref()
                .map(|a| a.class.clone())
                .unwrap_or_default(),
            interim: c.radius.as_ref().and_then(|a| a.interim),
        };
        let sid = r.acct_start(now, id, info);
        tracing::info!(peer = %e.peer, acct_session_id = sid, "RADIUS accounting started");
    }

    /// Accounting Stop (or forgetting a pending request) for a call that ended.
    pub(super) fn radius_end(&mut self, id: u16, now: Instant, reason: &str, call: &Call) {
        let stopping = self.stop.is_some();
        let Some(r) = self.radius.as_mut() else {
            return;
        };
        r.forget(id);
        if call.up_since.is_some() {
            let mut cause = crate::radius::terminate_cause(reason, stopping);
            // The control connection closed while LCP was already terminating at the peer's
            // request (a client hanging up sends Terminate-Request, then closes): the user
            // ended it, the carrier was not lost.
            if cause == virtgate_radius::attr::terminate::LOST_CARRIER
                && call.close_reason.is_none()
                && call.link.session.state() == virtgate_ppp::Phase::Terminate
            {
                cause = virtgate_radius::attr::terminate::USER_REQUEST;
            }
            r.acct_stop(now, id, counters(call), cause);
        }
    }
}
