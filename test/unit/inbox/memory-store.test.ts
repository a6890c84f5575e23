/**
 * The store suite on the in-memory store (no database): the same behaviour, measured against the
 * embedded PGlite in test/bench/inbox-store.ts.
 */
import { memoryFixture } from '../../support/store-fixtures';
import { storeSuite } from '../../support/store-suite';

storeSuite(memoryFixture());
