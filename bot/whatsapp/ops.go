package whatsapp

// Ready reports whether messages can flow (connected), with a reason when
// not: what /readyz checks of each channel.
func (c *Channel) Ready() (bool, string) { return c.health.Ready() }

// ConnectionState is the connection state for /metrics
// (checkinbot_whatsapp_state): connected, disconnected, logged-out or
// temporarily-banned; empty before the first connection attempt.
func (c *Channel) ConnectionState() string { return string(c.health.State()) }
