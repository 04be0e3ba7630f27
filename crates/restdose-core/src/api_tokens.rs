//! Personal API tokens for practice software: created on the portal and shown once, stored only
//! as SHA-256, revocable. The secret is `rdk_` followed by 43 base64url characters.

use restdose_crypto::SecretToken;
use restdose_store::{ApiTokenInfo, NewApiToken};
use uuid::Uuid;

use crate::validation::text_field;
use crate::{Principal, ServiceError, Services};

const PREFIX: &str = "rdk_";

/// A token just created: the secret is shown to the practice exactly once.
#[derive(Debug)]
pub struct CreatedApiToken {
    pub info: ApiTokenInfo,
    pub secret: String,
}

impl Services {
    pub async fn create_api_token(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<CreatedApiToken, ServiceError> {
        let practice_id = principal.approved_practice()?;
        let mut errors = Vec::new();
        let name = text_field(name, "name", 100, &mut errors);
        if !errors.is_empty() {
            return Err(ServiceError::Validation(errors));
        }
        let secret = SecretToken::generate()?;
        let now = self.clock.now();
        let token = NewApiToken {
            id: Uuid::new_v4(),
            practice_id,
            name,
            hash: secret.hash(),
            created_at: now,
        };
        self.store.insert_api_token(&token).await?;
        tracing::info!(practice = %practice_id, token = %token.id, "API token created");
        Ok(CreatedApiToken {
            info: ApiTokenInfo {
                id: token.id,
                name: token.name,
                created_at: now,
                last_used_at: None,
                revoked_at: None,
            },
            secret: format!("{PREFIX}{}", secret.expose()),
        })
    }

    pub async fn api_tokens(
        &self,
        principal: &Principal,
    ) -> Result<Vec<ApiTokenInfo>, ServiceError> {
        let practice_id = principal.approved_practice()?;
        Ok(self.store.api_tokens(practice_id).await?)
    }

    pub async fn revoke_api_token(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<(), ServiceError> {
        let practice_id = principal.approved_practice()?;
        if !self
            .store
            .revoke_api_token(practice_id, id, self.clock.now())
            .await?
        {
            return Err(ServiceError::NotFound);
        }
        tracing::info!(practice = %practice_id, token = %id, "API token revoked");
        Ok(())
    }

    /// The principal behind `Authorization: Bearer <secret>`. Tokens of practices that are no
    /// longer approved still authenticate, but every use case then answers `Forbidden`.
    pub async fn authenticate_api_token(&self, bearer: &str) -> Result<Principal, ServiceError> {
        let secret = bearer
            .strip_prefix(PREFIX)
            .and_then(|s| SecretToken::parse(s).ok())
            .ok_or(ServiceError::Unauthenticated)?;
        let practice_id = self
            .store
            .practice_for_api_token(&secret.hash(), self.clock.now())
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let practice = self
            .store
            .practice(practice_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        Ok(Principal::Practice {
            id: practice.id,
            status: practice.status,
        })
    }
}
