/**
 * STOMP transactions (spec 1.2 §BEGIN, §COMMIT, §ABORT): what SEND, ACK and NACK collect in one, and
 * the COMMIT that hands it to the broker. Split from commands.ts, which dispatches to these.
 */
import { printable } from '../destinations/destination';
import { ServiceError } from '../errors';
import { header, type Frame } from '../stomp/frame';
import type { CommandSession, OpenTransaction } from './command-session';

function required(frame: Frame, name: string): string {
  const value = header(frame, name);
  if (value === undefined || value === '') {
    throw new ServiceError('bad_frame', `${frame.command} needs a '${name}' header`);
  }
  return value;
}

export function openTransaction(session: CommandSession, name: string): OpenTransaction {
  const tx = session.transactions.get(name);
  if (!tx)
    throw new ServiceError('unknown_transaction', `no transaction '${printable(name)}' (send BEGIN first)`);
  const limit = session.ctx.settings.maxTransactionFrames;
  if (tx.ops.length >= limit) {
    session.ctx.metrics.limitsHit.inc({ limit: 'transaction_frames' });
    throw new ServiceError(
      'limit_exceeded',
      `at most ${limit} frames per transaction (MAX_TRANSACTION_FRAMES): COMMIT or ABORT first`,
    );
  }
  return tx;
}

/** Bytes of messages held in this session's open transactions (bounded, like every client buffer). */
export function checkTransactionBytes(session: CommandSession, adding: number): void {
  const limit = session.ctx.settings.maxTransactionBytes;
  let held = adding;
  for (const { ops } of session.transactions.values()) {
    for (const op of ops) if (op.op === 'publish') held += op.message.body.length;
  }
  if (held > limit) {
    session.ctx.metrics.limitsHit.inc({ limit: 'transaction_bytes' });
    throw new ServiceError(
      'limit_exceeded',
      `open transactions may hold at most ${limit} bytes of messages: COMMIT or ABORT first`,
    );
  }
}

/** §BEGIN. */
export function begin(session: CommandSession, frame: Frame): void {
  const name = required(frame, 'transaction');
  if (session.transactions.has(name))
    throw new ServiceError('bad_frame', `transaction '${printable(name)}' is already open`);
  if (session.transactions.size >= session.transactionLimit) {
    throw new ServiceError(
      'limit_exceeded',
      `at most ${session.transactionLimit} open transactions per session`,
    );
  }
  session.transactions.set(name, { ops: [], acks: [] });
}

/** §COMMIT: everything the transaction collected goes through the delivery seam together. */
export async function commit(session: CommandSession, frame: Frame): Promise<void> {
  const name = required(frame, 'transaction');
  const tx = session.transactions.get(name);
  if (!tx) throw new ServiceError('unknown_transaction', `no transaction '${printable(name)}'`);
  session.transactions.delete(name);
  await session.ctx.deliveries.commit(tx.ops);
  for (const token of tx.acks) session.subscriptions.settleToken(token);
}

/** §ABORT. */
export function abort(session: CommandSession, frame: Frame): void {
  const name = required(frame, 'transaction');
  if (!session.transactions.delete(name))
    throw new ServiceError('unknown_transaction', `no transaction '${printable(name)}'`);
}
