// Test certificates made with the openssl CLI in a temp dir: a self-signed CA and leaf certificates it signs
// (EC P-256, valid one day, usable as TLS server and client certificates, naming 127.0.0.1 and localhost).
// Tests that need them call `opensslMissing()` first and skip with its message when openssl is not installed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const openssl = process.env.KEEL_OPENSSL ?? '/usr/bin/openssl';

/** Why certificate tests cannot run here, or null when they can. */
export function opensslMissing(): string | null {
  return existsSync(openssl) ? null : `openssl not found at ${openssl} (set KEEL_OPENSSL): TLS tests skipped`;
}

export interface CertFiles {
  readonly cert: string;
  readonly key: string;
}

export class TestPki {
  readonly dir: string;
  constructor() {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'keel-pki-'));
  }

  /** A self-signed CA named `name`. */
  ca(name: string): CertFiles {
    const files = this.files(name);
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.key, '-out', files.cert,
      '-days', '1', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return files;
  }

  /**
   * A certificate for `name` signed by `ca`, valid for 127.0.0.1 and localhost, as server and as client; its
   * subject common name is `cn` (default: `name`).
   */
  leaf(name: string, ca: CertFiles, cn = name): CertFiles {
    const files = this.files(name);
    const csr = path.join(this.dir, `${name}.csr`);
    const ext = path.join(this.dir, `${name}.ext`);
    writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n');
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.key, '-out', csr, '-subj', `/CN=${cn}`]);
    run(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', files.cert, '-days', '1', '-extfile', ext]);
    return files;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private files(name: string): CertFiles {
    return { cert: path.join(this.dir, `${name}.crt`), key: path.join(this.dir, `${name}.key`) };
  }
}

function run(args: string[]): void {
  execFileSync(openssl, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
}
