"""Webhooks: endpoints an organisation's admins register, and the signed deliveries to them."""
