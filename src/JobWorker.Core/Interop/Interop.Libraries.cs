namespace JobWorker.Core;

internal static partial class Interop
{
    internal static class Libraries
    {
        /// <summary>glibc.</summary>
        internal const string Libc = "libc";

        /// <summary>Our C spawn library (native/), shipped next to JobWorker.Core.dll.</summary>
        internal const string Spawn = "libjobworker_spawn";
    }
}
