using JobWorker.Core.Jobs;

namespace JobWorker.Core.Cgroups;

/// <summary>The users' aggregate limits as cgroup writes, validated once when the runner is created.</summary>
internal sealed class UserPlans
{
    private readonly CgroupLimitPlan _default;
    private readonly Dictionary<string, CgroupLimitPlan> _byUser;
    private readonly List<(string Setting, CgroupLimitPlan Plan)> _all;

    private UserPlans(CgroupLimitPlan defaultPlan, Dictionary<string, CgroupLimitPlan> byUser, List<(string, CgroupLimitPlan)> all)
    {
        _default = defaultPlan;
        _byUser = byUser;
        _all = all;
    }

    /// <exception cref="ArgumentException">A limit the kernel would reject; names the setting.</exception>
    public static UserPlans Create(JobRunnerOptions options)
    {
        var all = new List<(string, CgroupLimitPlan)>();
        var defaultPlan = CgroupLimitPlan.CreateForUser(options.UserLimits ?? throw new ArgumentException("UserLimits must not be null; use UserCgroupLimits.None.", nameof(options)), nameof(options.UserLimits));
        all.Add((nameof(options.UserLimits), defaultPlan));
        var byUser = new Dictionary<string, CgroupLimitPlan>(StringComparer.Ordinal);
        foreach (var (user, limits) in options.UserLimitsByUser ?? throw new ArgumentException("UserLimitsByUser must not be null.", nameof(options)))
        {
            var setting = $"{nameof(options.UserLimitsByUser)}[{user}]";
            var plan = CgroupLimitPlan.CreateForUser(limits ?? throw new ArgumentException($"{setting} is null.", nameof(options)), setting);
            byUser[user] = plan;
            all.Add((setting, plan));
        }

        return new UserPlans(defaultPlan, byUser, all);
    }

    /// <summary>The plan for <paramref name="owner"/>'s group.</summary>
    public CgroupLimitPlan For(string? owner) => owner is not null && _byUser.TryGetValue(owner, out var plan) ? plan : _default;

    /// <summary>
    /// Refuses a configured aggregate limit whose controller the tree lacks: an aggregate that is not enforced would
    /// let one user starve the others while the settings say otherwise.
    /// </summary>
    /// <exception cref="CgroupControllerUnavailableException">A controller is missing; names the setting.</exception>
    public void CheckControllers(CgroupTree tree)
    {
        foreach (var (setting, plan) in _all)
        {
            foreach (var controller in plan.Controllers)
            {
                if (!tree.Controllers.Contains(controller))
                {
                    throw new CgroupControllerUnavailableException(controller, $"{setting} needs the {controller} controller. {tree.ExplainMissing(controller, setting, $"remove the {controller} limits from {setting}")}");
                }
            }
        }
    }
}
