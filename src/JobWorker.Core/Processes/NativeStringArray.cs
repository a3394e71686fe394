using System.Runtime.InteropServices;
using System.Text;

namespace JobWorker.Core.Processes;

/// <summary>A NULL-terminated <c>char*[]</c> of UTF-8 strings in one native allocation (argv, envp).</summary>
internal sealed unsafe class NativeStringArray : IDisposable
{
    private byte* _block;

    public NativeStringArray(IReadOnlyList<string> values)
    {
        var pointerBytes = (nuint)((values.Count + 1) * sizeof(byte*));
        nuint stringBytes = 0;
        foreach (var value in values)
        {
            stringBytes += (nuint)Encoding.UTF8.GetByteCount(value) + 1;
        }

        _block = (byte*)NativeMemory.Alloc(pointerBytes + stringBytes);
        var pointers = (byte**)_block;
        var next = _block + pointerBytes;
        for (var i = 0; i < values.Count; i++)
        {
            pointers[i] = next;
            var written = Encoding.UTF8.GetBytes(values[i], new Span<byte>(next, int.MaxValue / 2));
            next[written] = 0;
            next += written + 1;
        }

        pointers[values.Count] = null;
    }

    public byte** Pointer => (byte**)_block;

    public void Dispose()
    {
        if (_block != null)
        {
            NativeMemory.Free(_block);
            _block = null;
        }
    }
}
