"""What operators steer: moderation, privacy, analytics, auth, safety."""
