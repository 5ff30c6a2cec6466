import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { TallyError } from '@tally/core';

/** Provider secrets at rest: AES-256-GCM, stored as iv.tag.ciphertext (base64url). The key never
 * sits in the store: it comes from config (secret_key) or a key file beside the data. */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32)
      throw new TallyError('config_invalid', 'secret_key must be 32 bytes (64 hex or 44 base64 characters).');
    this.key = key;
  }

  static parseKey(text: string): Buffer {
    const t = text.trim();
    const key = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
    if (key.length !== 32)
      throw new TallyError('config_invalid', 'secret_key must be 32 bytes (64 hex or 44 base64 characters).');
    return key;
  }

  encrypt(plain: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return [iv, c.getAuthTag(), ct].map((b) => b.toString('base64url')).join('.');
  }

  decrypt(sealed: string): string {
    const [iv, tag, ct] = sealed.split('.').map((p) => Buffer.from(p, 'base64url'));
    if (!iv || !tag || !ct) throw new TallyError('internal', 'A stored secret is malformed.');
    const d = createDecipheriv('aes-256-gcm', this.key, iv);
    d.setAuthTag(tag);
    try {
      return Buffer.concat([d.update(ct), d.final()]).toString('utf8');
    } catch {
      throw new TallyError(
        'config_invalid',
        'A stored provider secret cannot be decrypted: the secret key has changed.',
      );
    }
  }
}
