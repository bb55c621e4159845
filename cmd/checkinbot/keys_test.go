package main

// testMasterKey is the master key the tests run serve with (32 bytes,
// base64): serve refuses to start without one.
const testMasterKey = "ZW5jLXRlc3QtbWFzdGVyLWtleS0wMTIzNDU2Nzg5YWI="
