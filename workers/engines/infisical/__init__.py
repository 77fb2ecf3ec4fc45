"""The secrets engine: Infisical exports (age-encrypted), verify, import back, rotation."""
