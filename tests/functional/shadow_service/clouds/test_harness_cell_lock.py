"""The openstack harness really runs Nova's cell databases with the
reader-preferring cell lock of ``tests/openstack_support.py`` (a patch by
dotted name once reached the ``nova`` package instead, and the harness
deadlocked as Nova's own lock does)."""

from nova import context as nova_context

from tests import openstack_support as support


class CellLockTest(support.OpenStackHarnessTestBase):

    def test_the_cell_databases_use_the_reader_preferring_lock(self):
        cells = nova_context.target_cell.__self__
        self.assertIsInstance(cells._cell_lock,
                              support._ReaderPreferringLock)
        # And the cloud works through it.
        self.assertTrue(self.api.get_flavors())
