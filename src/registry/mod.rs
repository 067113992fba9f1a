//! Distribution protocol client: pull, push, auth, credentials.
