/**
 * The store suite on the embedded engine, PGlite, in memory (INBOX_DATA_DIR unset) and in a
 * directory (kept across restarts).
 */
import { pgliteFixture } from '../../support/store-fixtures';
import { storeSuite } from '../../support/store-suite';

storeSuite(pgliteFixture('memory'));
storeSuite(pgliteFixture('files'));
