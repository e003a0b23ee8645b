// Starts the real hearth binary (HEARTH_BIN) on a free loopback port with a temporary
// data directory, and registers users on it.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

async function freePort() {
    return new Promise((resolve, reject) => {
        const server = createServer();
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
        server.on("error", reject);
    });
}

export async function startHearth() {
    const bin = process.env.HEARTH_BIN;
    if (!bin) throw new Error("set HEARTH_BIN to the hearth binary");
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "hearth-e2ee-"));
    const env = { ...process.env, RUST_LOG: "warn", HEARTH_SYNC_WRITES: "false" };
    // Tests register, join and send faster than any person, from one address.
    for (const family of ["MESSAGES", "JOINS", "INVITES", "REGISTRATIONS", "SEARCH"]) {
        env[`HEARTH_LIMITS__${family}_BURST`] = "1000000";
    }
    delete env.HEARTH_BIN;
    const child = spawn(
        bin,
        ["--listen", `127.0.0.1:${port}`, "--data", join(dir, "data"), "--server-name", `localhost:${port}`],
        { env, stdio: ["ignore", "ignore", "pipe"] },
    );
    let logs = "";
    child.stderr.on("data", (chunk) => (logs += chunk));
    const baseUrl = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
        try {
            const response = await fetch(`${baseUrl}/_matrix/client/versions`);
            if (response.ok) break;
        } catch {
            // not listening yet
        }
        if (child.exitCode !== null) throw new Error(`hearth exited early: ${logs}`);
        if (Date.now() > deadline) throw new Error(`hearth did not become ready: ${logs}`);
        await new Promise((r) => setTimeout(r, 50));
    }
    return {
        baseUrl,
        logs: () => logs,
        async register(username) {
            const response = await fetch(`${baseUrl}/_matrix/client/v3/register`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({
                    username,
                    password: "correct horse battery",
                    auth: { type: "m.login.dummy" },
                }),
            });
            const body = await response.json();
            if (!response.ok) throw new Error(`register ${username}: ${JSON.stringify(body)}`);
            return { userId: body.user_id, accessToken: body.access_token, deviceId: body.device_id };
        },
        async login(username, deviceId) {
            const response = await fetch(`${baseUrl}/_matrix/client/v3/login`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: username },
                    password: "correct horse battery",
                    device_id: deviceId,
                }),
            });
            const body = await response.json();
            if (!response.ok) throw new Error(`login ${username}: ${JSON.stringify(body)}`);
            return { userId: body.user_id, accessToken: body.access_token, deviceId: body.device_id };
        },
        stop() {
            child.kill("SIGKILL");
            rmSync(dir, { recursive: true, force: true });
        },
    };
}
