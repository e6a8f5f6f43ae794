"""The service side: settings, the router actor and the persistent actor of each user."""
