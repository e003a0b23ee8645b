//! Binding a user's 3PIDs at identity servers through the homeserver
//! (`/account/3pid/bind`, `/account/3pid/unbind`), remembering where each was bound so
//! that removing the address or deactivating the account unbinds it there again (as
//! Synapse does).

use ruma::UserId;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::service::Services;
use crate::store::BoundThreepid;

/// What the client is told of an unbinding (`id_server_unbind_result`).
pub fn unbind_result(unbound: bool) -> &'static str {
    if unbound { "success" } else { "no-support" }
}

fn same_address(medium: &str, a: &str, b: &str) -> bool {
    if medium == "email" {
        a.trim().eq_ignore_ascii_case(b.trim())
    } else {
        a == b
    }
}

impl Services {
    /// Binds the 3PID of the identity server's validated session `sid` to `user_id`
    /// there, and remembers the binding.
    pub async fn bind_threepid(
        &self,
        user_id: &UserId,
        id_server: &str,
        id_access_token: &str,
        sid: &str,
        client_secret: &str,
    ) -> Result<()> {
        if sid.is_empty() || client_secret.is_empty() {
            return Err(Error::missing_param("sid and client_secret are required"));
        }
        let answer = self
            .identity
            .bind(
                id_server,
                id_access_token,
                sid,
                client_secret,
                user_id.as_str(),
            )
            .await?;
        let field = |name: &str| {
            answer
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::BadGateway,
                        format!("the identity server {id_server} answered a bind without {name}"),
                    )
                })
        };
        let bound = BoundThreepid {
            medium: field("medium")?,
            address: field("address")?,
            id_server: id_server.to_owned(),
        };
        let mut batch = self.store.batch();
        batch.put_bound_threepid(user_id.as_str(), &bound)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Unbinds a 3PID of `user_id` at `id_server`, or, without one, at every identity
    /// server this server bound it at. `false` when there was nowhere to unbind it or an
    /// identity server does not support unbinding.
    pub async fn unbind_threepid(
        &self,
        user_id: &UserId,
        medium: &str,
        address: &str,
        id_server: Option<&str>,
    ) -> Result<bool> {
        let servers: Vec<String> = match id_server {
            Some(server) => vec![server.to_owned()],
            None => self
                .store
                .bound_threepids(user_id.as_str())?
                .into_iter()
                .filter(|b| b.medium == medium && same_address(medium, &b.address, address))
                .map(|b| b.id_server)
                .collect(),
        };
        if servers.is_empty() {
            return Ok(false);
        }
        let mut unbound = true;
        for server in servers {
            unbound &= self
                .identity
                .unbind(&server, user_id.as_str(), medium, address)
                .await?;
            let mut batch = self.store.batch();
            for bound in self.store.bound_threepids(user_id.as_str())? {
                if bound.id_server == server
                    && bound.medium == medium
                    && same_address(medium, &bound.address, address)
                {
                    batch.delete_bound_threepid(user_id.as_str(), &bound);
                }
            }
            self.store.write(batch)?;
        }
        Ok(unbound)
    }

    /// Unbinds every 3PID this server bound for a user being deactivated (at `id_server`
    /// if given, else where each was bound). An identity server that fails is logged and
    /// reported as `false`: deactivation goes on.
    pub async fn unbind_all_threepids(&self, user_id: &UserId, id_server: Option<&str>) -> bool {
        let bound = match self.store.bound_threepids(user_id.as_str()) {
            Ok(bound) => bound,
            Err(e) => {
                tracing::warn!(user_id = %user_id, error = %e, "cannot read bound 3PIDs");
                return false;
            }
        };
        let mut unbound = true;
        let mut seen: Vec<(String, String)> = Vec::new();
        for b in bound {
            let key = (b.medium.clone(), b.address.clone());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            match self
                .unbind_threepid(user_id, &b.medium, &b.address, id_server)
                .await
            {
                Ok(done) => unbound &= done,
                Err(e) => {
                    tracing::warn!(user_id = %user_id, error = %e.message, "3PID not unbound at deactivation");
                    unbound = false;
                }
            }
        }
        unbound
    }
}
