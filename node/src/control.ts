// The control socket from Node: `pm.serveControl(path)` serves core's control
// interface, so the `titan-pm` CLI (`ls`, `logs`, `restart`, `scale`, `monit`,
// `stop`) reaches this manager. The socket goes to `path`, else $TITAN_PM_SOCKET,
// else $XDG_RUNTIME_DIR/titan-pm/control.sock, else /tmp/titan-pm-$UID/control.sock
// (core's rule, the CLI's too); its folder is 0700, the socket 0600, and peers of
// another user are refused.
import { native } from './binding';

type NativeControlServer = InstanceType<typeof native.NativeControlServer>;

const POLL_MS = 50;

/** A running control server; `close()` stops it and removes the socket. */
export class ControlServer {
  readonly #native: NativeControlServer;

  /** @internal */
  constructor(server: NativeControlServer) {
    this.#native = server;
  }

  get path(): string {
    return this.#native.path;
  }

  /** Stops accepting connections and removes the socket file. */
  close(): void {
    this.#native.close();
  }

  /** Whether a client ran `titan-pm stop` and the manager has shut down. */
  isShutdownRequested(): boolean {
    return this.#native.isShutdownRequested();
  }

  /** Resolves once `titan-pm stop` has shut the manager down: a host's main awaits it. */
  shutdownRequested(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (this.isShutdownRequested() ? resolve() : setTimeout(check, POLL_MS));
      check();
    });
  }
}
