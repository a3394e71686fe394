// Allocates and touches argv[0] MiB of managed memory, keeping all of it reachable, then prints
// "allocated N MiB". Under a memory.max below that, either the GC's heap hard limit (derived from the
// cgroup's limit) throws OutOfMemoryException, or the kernel's OOM killer ends the process.
using System.Globalization;

var mib = int.Parse(args[0], CultureInfo.InvariantCulture);
Console.WriteLine("started");
var blocks = new List<byte[]>(mib);
for (var m = 0; m < mib; m++)
{
    var block = new byte[1 << 20];
    // Touch every page: a fresh large-object allocation is only committed, not resident, until written.
    for (var offset = 0; offset < block.Length; offset += 4096)
    {
        block[offset] = 1;
    }

    blocks.Add(block);
}

Console.WriteLine($"allocated {blocks.Count} MiB");
