"""What several test modules share: fabricated data in the real formats, the arch strings the
tests name, and the phases run on fabricated shards. Test modules import from here, never
from one another."""
