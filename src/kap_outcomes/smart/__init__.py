"""SMART Backend Services: EHR backends registered with a JWKS, client_credentials grants
authenticated with a signed JWT (private_key_jwt), and the short-lived access tokens issued
for them."""
